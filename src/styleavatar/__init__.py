"""styleavatar: photo-realistic, drivable portrait avatars learned from one video.

Sub-packages follow the data flow: ``io`` (video files) -> ``tracking`` (landmarks, face model fit,
masks) -> ``rendering`` (rasterisers, UV/texture renders) -> ``data`` (datasets, ``preprocess``).
"""

__version__ = "0.1.0"
