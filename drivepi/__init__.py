"""DrivePI: a spatial-aware 4D multimodal LLM for autonomous driving."""
__version__ = '0.1.0'
