"""Video and file input/output: reading any video ffmpeg reads, writing H.264 mp4, atomic writes."""
