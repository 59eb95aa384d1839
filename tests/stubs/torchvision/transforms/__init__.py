"""Stand-in (tests only): see tests/stubs/torchvision/__init__.py."""
