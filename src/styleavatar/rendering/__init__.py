"""Rasterising the face model (paper Sec. 3.1): a plain-PyTorch reference rasteriser, a moderngl
(headless EGL / GPU OpenGL) fast path that must agree with it, and the UV and texture renders."""
