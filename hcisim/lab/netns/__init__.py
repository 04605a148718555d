"""The ``netns`` backend: one network namespace per host on this machine."""
