"""The federated algorithm without Flower: phases behind one template, talking to a Transport."""
