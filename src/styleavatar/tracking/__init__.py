"""Face tracking (paper Sec. 3.1): MediaPipe landmarks, the face model and its per-frame fit,
temporal smoothing, the crop box and person masks. No neural networks of our own live here."""
