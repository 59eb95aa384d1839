"""A stand-in for torchvision, for tests only: spandrel imports a few of its names at import time
(LaMa, RestoreFormer), and torchvision cannot be installed here. None of the architectures the
tests load calls them."""
