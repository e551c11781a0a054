"""The genetic encoding on evolvable layers: the Evo layers and their kinds, heredity,
synthesis of offspring, m-parent mating, conversion of Keras models, living counts.
"""
