"""hcisim: predict (fluid SimPy model) and prove (real GlusterFS lab) what a three-node
hyperconverged oVirt + GlusterFS cluster does, checked by the same claims on both."""

__version__ = "0.1.0"
