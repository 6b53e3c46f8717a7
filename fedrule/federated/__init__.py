"""Flower apps of a fedrule fleet. The only package that imports flwr."""
