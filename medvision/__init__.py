"""medvision: adapt ImageNet backbones to small, imbalanced medical image sets — with evidence.

For education and research, not for diagnosis.
"""

__version__ = "0.1.0"

DISCLAIMER = (
    "medvision is for education and research. It is not a medical device and must not be used "
    "for diagnosis or treatment decisions."
)
