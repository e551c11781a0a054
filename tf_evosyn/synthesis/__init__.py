"""Breeding offspring: one parent's masks drawn from its heredity (offspring), and m-parent
synthesis (mating). Above core/, graph/ and environments/, which it draws with.
"""
