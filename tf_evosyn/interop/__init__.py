"""TF-MOT interoperability: evolvable masks as TF-MOT pruning, and evolution as a schedule."""
