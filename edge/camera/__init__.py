"""Frame sources (edge.camera.base), the camera owner (edge.camera.feed), and the capture helper process
(edge.camera.helper) that runs picamera2 on Raspberry Pi OS's own Python.

Nothing is imported here: the helper runs on the system Python, which has numpy and picamera2 but none of
the daemon's other dependencies, and must be able to import edge.camera.picam and edge.camera.ring alone.
"""
