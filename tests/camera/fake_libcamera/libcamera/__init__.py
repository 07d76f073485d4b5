"""A stand-in for libcamera's Python bindings (a C++ extension only Raspberry Pi OS ships), at the boundary
picamera2 uses: the camera manager, cameras, configurations, frame buffers, requests, controls.

The real picamera2 package (from PyPI) runs on top of it unchanged. One simulated camera ("usb" style: no
raw stream) fills memfd-backed frame buffers, which picamera2 maps with mmap as it would dma-bufs, with a
test pattern that encodes the frame number, at the configured frame rate, and completes requests through
the event fd. ``camera.stall()`` stops delivery (a stalled sensor or cable); ``camera.resume()`` restarts it.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import mmap
import os
import threading
import time
from types import SimpleNamespace

# -- value types ---------------------------------------------------------------------------------------


class Size:
    def __init__(self, width: int = 0, height: int = 0) -> None:
        self.width, self.height = int(width), int(height)

    def to_tuple(self) -> tuple[int, int]:
        return (self.width, self.height)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Size) and self.to_tuple() == other.to_tuple()

    def __hash__(self) -> int:
        return hash(self.to_tuple())

    def __repr__(self) -> str:
        return f"{self.width}x{self.height}"


class Rectangle:
    def __init__(self, x: int = 0, y: int = 0, width: int = 0, height: int = 0) -> None:
        self.x, self.y, self.width, self.height = x, y, width, height

    def to_tuple(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.width, self.height)


class Transform:
    def __init__(self, other: Transform | None = None, *, hflip: int = 0, vflip: int = 0, transpose: int = 0) -> None:
        if other is not None:
            hflip, vflip, transpose = other.hflip, other.vflip, other.transpose
        self.hflip, self.vflip, self.transpose = int(bool(hflip)), int(bool(vflip)), int(bool(transpose))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Transform) and (self.hflip, self.vflip, self.transpose) == (
            other.hflip, other.vflip, other.transpose)

    def __hash__(self) -> int:
        return hash((self.hflip, self.vflip, self.transpose))

    def __str__(self) -> str:  # picamera2 makes __repr__ this (the binding defines __str__ in C++)
        return f"<Transform hflip={self.hflip} vflip={self.vflip} transpose={self.transpose}>"


class Orientation(enum.Enum):
    Rotate0 = 1
    Rotate0Mirror = 2
    Rotate180 = 3
    Rotate180Mirror = 4
    Rotate90Mirror = 5
    Rotate270 = 6
    Rotate90 = 7
    Rotate270Mirror = 8


class ColorSpace:
    class Primaries(enum.Enum):
        Raw, Smpte170m, Rec709, Rec2020 = range(4)

    class TransferFunction(enum.Enum):
        Linear, Srgb, Rec709 = range(3)

    class YcbcrEncoding(enum.Enum):
        Null, Rec601, Rec709, Rec2020 = range(4)

    class Range(enum.Enum):
        Full, Limited = range(2)

    def __init__(self, other: ColorSpace | None = None, primaries=None, transfer=None, encoding=None,
                 range_=None) -> None:
        if other is not None:
            primaries, transfer, encoding, range_ = (other.primaries, other.transferFunction, other.ycbcrEncoding,
                                                     other.range)
        self.primaries, self.transferFunction, self.ycbcrEncoding, self.range = primaries, transfer, encoding, range_

    def _key(self) -> tuple:
        return (self.primaries, self.transferFunction, self.ycbcrEncoding, self.range)

    def __str__(self) -> str:
        return f"<ColorSpace {'/'.join(getattr(v, 'name', str(v)) for v in self._key())}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ColorSpace) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @staticmethod
    def Raw() -> ColorSpace:
        return ColorSpace(None, ColorSpace.Primaries.Raw, ColorSpace.TransferFunction.Linear,
                          ColorSpace.YcbcrEncoding.Null, ColorSpace.Range.Full)

    @staticmethod
    def Sycc() -> ColorSpace:
        return ColorSpace(None, ColorSpace.Primaries.Rec709, ColorSpace.TransferFunction.Srgb,
                          ColorSpace.YcbcrEncoding.Rec601, ColorSpace.Range.Full)

    @staticmethod
    def Smpte170m() -> ColorSpace:
        return ColorSpace(None, ColorSpace.Primaries.Smpte170m, ColorSpace.TransferFunction.Rec709,
                          ColorSpace.YcbcrEncoding.Rec601, ColorSpace.Range.Limited)

    @staticmethod
    def Rec709() -> ColorSpace:
        return ColorSpace(None, ColorSpace.Primaries.Rec709, ColorSpace.TransferFunction.Rec709,
                          ColorSpace.YcbcrEncoding.Rec709, ColorSpace.Range.Limited)


_libcamera = SimpleNamespace(ColorSpace=ColorSpace, Transform=Transform)

#: Bytes per pixel of the packed formats the simulated camera can produce.
BYTES_PER_PIXEL = {"RGB888": 3, "BGR888": 3, "XBGR8888": 4, "XRGB8888": 4}


class PixelFormat:
    def __init__(self, name: str) -> None:
        self.name = str(name)

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return str(other) == self.name

    def __hash__(self) -> int:
        return hash(self.name)


class StreamRole(enum.Enum):
    Raw, StillCapture, VideoRecording, Viewfinder = range(4)


class ControlType(enum.Enum):
    Bool, Byte, Integer32, Integer64, Float, String, Rectangle, Size = range(8)


class ControlId:
    def __init__(self, name: str, type_: ControlType = ControlType.Integer32) -> None:
        self.name, self.type = name, type_

    def __repr__(self) -> str:
        return f"<ControlId {self.name}>"


class ControlInfo:
    def __init__(self, minimum, maximum, default) -> None:
        self.min, self.max, self.default = minimum, maximum, default


controls = SimpleNamespace(
    ExposureTime=ControlId("ExposureTime"), AnalogueGain=ControlId("AnalogueGain", ControlType.Float),
    ExposureTimeMode=ControlId("ExposureTimeMode"), AnalogueGainMode=ControlId("AnalogueGainMode"),
    FrameDurationLimits=ControlId("FrameDurationLimits", ControlType.Integer64),
    AeEnable=ControlId("AeEnable", ControlType.Bool), AeMeteringMode=ControlId("AeMeteringMode"),
    Brightness=ControlId("Brightness", ControlType.Float), SensorTimestamp=ControlId("SensorTimestamp"),
    draft=SimpleNamespace(NoiseReductionModeEnum=SimpleNamespace(Off=0, Fast=1, HighQuality=2, Minimal=3)))
properties = SimpleNamespace(
    Model=ControlId("Model", ControlType.String), Location=ControlId("Location"),
    Rotation=ControlId("Rotation"), PixelArraySize=ControlId("PixelArraySize", ControlType.Size),
    draft=SimpleNamespace(ColorFilterArrangementEnum=SimpleNamespace(MONO=5)))


class SensorConfiguration:
    bit_depth = 0
    output_size = Size()


# -- configuration ---------------------------------------------------------------------------------------


class Stream:
    def __init__(self, configuration: StreamConfiguration) -> None:
        self.configuration = configuration


class StreamFormats:
    def __init__(self, sizes: dict[str, list[Size]]) -> None:
        self._sizes = sizes

    @property
    def pixel_formats(self) -> list[PixelFormat]:
        return [PixelFormat(name) for name in self._sizes]

    def sizes(self, pixel_format: PixelFormat) -> list[Size]:
        return list(self._sizes[str(pixel_format)])


class StreamConfiguration:
    def __init__(self, camera: Camera) -> None:
        self.size = Size(640, 480)
        self.pixel_format = PixelFormat("XBGR8888")
        self.buffer_count = 4
        self.stride = 0
        self.color_space: ColorSpace | None = ColorSpace.Sycc()
        self.stream = Stream(self)
        self.formats = StreamFormats({"MJPEG": list(camera.sizes), "YUYV": list(camera.sizes)})

    @property
    def frame_size(self) -> int:
        return self.stride * self.size.height


class CameraConfiguration:
    class Status(enum.Enum):
        Valid, Adjusted, Invalid = range(3)

    def __init__(self, camera: Camera, count: int) -> None:
        self._camera = camera
        self._streams = [StreamConfiguration(camera) for _ in range(count)]
        self.orientation = Orientation.Rotate0
        self.sensor_config: SensorConfiguration | None = None

    def at(self, index: int) -> StreamConfiguration:
        return self._streams[index]

    def __iter__(self):
        return iter(self._streams)

    def __len__(self) -> int:
        return len(self._streams)

    def validate(self) -> CameraConfiguration.Status:
        status = CameraConfiguration.Status.Valid
        for stream in self._streams:
            bpp = BYTES_PER_PIXEL.get(str(stream.pixel_format))
            if bpp is None:
                return CameraConfiguration.Status.Invalid
            if stream.size not in self._camera.sizes:
                stream.size = self._camera.sizes[0]
                status = CameraConfiguration.Status.Adjusted
            stream.stride = stream.size.width * bpp
        return status


# -- buffers and requests ----------------------------------------------------------------------------------


class FrameMetadata:
    class Status(enum.Enum):
        Success, Error, Cancelled = range(3)

    def __init__(self, length: int) -> None:
        self.status = FrameMetadata.Status.Success
        self.sequence = 0
        self.timestamp = 0
        self.planes = [SimpleNamespace(bytes_used=length)]


class FrameBuffer:
    class Plane:
        def __init__(self) -> None:
            self.fd, self.offset, self.length = -1, 0, 0

    def __init__(self, planes: list[FrameBuffer.Plane], cookie: int = 0) -> None:
        self.planes = planes
        self.cookie = cookie
        self.metadata = FrameMetadata(sum(p.length for p in planes))


class FrameBufferAllocator:
    """Frame buffers in memfds: mmap-able file descriptors, as dma-bufs are on the board."""

    def __init__(self, camera: Camera) -> None:
        self.camera = camera
        self._buffers: dict[Stream, list[FrameBuffer]] = {}

    def allocate(self, stream: Stream) -> int:
        config = stream.configuration
        buffers = []
        for index in range(config.buffer_count):
            fd = os.memfd_create(f"fake-libcamera-{index}")
            os.ftruncate(fd, config.frame_size)
            plane = FrameBuffer.Plane()
            plane.fd, plane.length = fd, config.frame_size
            buffers.append(FrameBuffer([plane]))
            self.camera.open_fds.append(fd)
        self._buffers[stream] = buffers
        return len(buffers)

    def buffers(self, stream: Stream) -> list[FrameBuffer]:
        return self._buffers[stream]


class Request:
    class Status(enum.Enum):
        Pending, Complete, Cancelled = range(3)

    def __init__(self, cookie: int) -> None:
        self.cookie = cookie
        self.buffers: dict[Stream, FrameBuffer] = {}
        self.metadata: dict[ControlId, object] = {}
        self.status = Request.Status.Pending
        self.controls: dict[ControlId, object] = {}

    def add_buffer(self, stream: Stream, buffer: FrameBuffer) -> None:
        self.buffers[stream] = buffer

    def set_control(self, control: ControlId, value: object) -> None:
        self.controls[control] = value

    def reuse(self) -> None:
        self.status = Request.Status.Pending
        self.metadata = {}


# -- the camera --------------------------------------------------------------------------------------------


class Camera:
    def __init__(self, manager: CameraManager) -> None:
        self.id = "/base/axi/pcie@120000/rp1/usb@200000-1:1.0-fake"
        self.manager = manager
        self.sizes = [Size(640, 480), Size(1280, 720)]
        self.properties = {properties.Model: "fake-uvc", properties.Location: 2, properties.Rotation: 0}
        self.controls = {
            controls.FrameDurationLimits: ControlInfo(33333, 1_000_000, 33333),
            controls.ExposureTime: ControlInfo(100, 1_000_000, 20000),
            controls.AeEnable: ControlInfo(False, True, True),
            controls.AeMeteringMode: ControlInfo(0, 3, 0),
            controls.Brightness: ControlInfo(-1.0, 1.0, 0.0),
        }
        self.acquired = False
        self.started = False
        self.configured: CameraConfiguration | None = None
        self.start_controls: dict = {}
        self.open_fds: list[int] = []
        self.frames_made = 0
        self._queue: list[Request] = []
        self._cond = threading.Condition()
        self._flowing = threading.Event()
        self._flowing.set()
        self._thread: threading.Thread | None = None
        self.log: list[str] = []

    # what picamera2 calls
    def acquire(self) -> None:
        if self.acquired:
            raise RuntimeError("Failed to acquire camera: busy")
        self.acquired = True
        self.log.append("acquire")

    def release(self) -> None:
        if self.started:
            raise RuntimeError("Failed to release camera: still running")
        self.acquired = False
        for fd in self.open_fds:
            os.close(fd)
        self.open_fds = []
        self.log.append("release")

    def generate_configuration(self, roles: list[StreamRole]) -> CameraConfiguration:
        return CameraConfiguration(self, len(roles))

    def configure(self, config: CameraConfiguration) -> int:
        if not self.acquired or self.started:
            return -1
        if self.manager.fail_configure:
            return -22  # -EINVAL, as the real binding returns
        self.configured = config
        self.log.append("configure")
        return 0

    def create_request(self, cookie: int = 0) -> Request:
        return Request(cookie)

    def start(self, start_controls: dict | None = None) -> None:
        if self.configured is None:
            raise RuntimeError("Failed to start camera: not configured")
        self.start_controls = dict(start_controls or {})
        self.started = True
        self._thread = threading.Thread(target=self._run, daemon=True, name="fake-libcamera")
        self._thread.start()
        self.log.append("start")

    def queue_request(self, request: Request) -> None:
        if not self.started:
            raise RuntimeError("Failed to queue request: camera stopped")
        with self._cond:
            self._queue.append(request)
            self._cond.notify_all()

    def stop(self) -> None:
        self.started = False
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(2)
        with self._cond:
            cancelled, self._queue = self._queue, []
        for request in cancelled:
            request.status = Request.Status.Cancelled
        self.manager.complete(cancelled)
        self.log.append("stop")

    # what the tests call
    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def _run(self) -> None:
        config = self.configured
        assert config is not None
        limits = self.start_controls.get(controls.FrameDurationLimits, (33333, 33333))
        period = limits[0] / 1e6
        next_at = time.monotonic()
        for sequence in itertools.count():
            while not self._flowing.wait(0.05):
                if not self.started:
                    return
            with self._cond:
                self._cond.wait_for(lambda: self._queue or not self.started)
                if not self.started:
                    return
                request = self._queue.pop(0)
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))
            for stream, buffer in request.buffers.items():
                self._fill(buffer, stream.configuration, sequence)
            request.status = Request.Status.Complete
            request.metadata = {controls.SensorTimestamp: time.monotonic_ns(), controls.ExposureTime: 20000}
            self.frames_made += 1
            self.manager.complete([request])

    @staticmethod
    def _fill(buffer: FrameBuffer, config: StreamConfiguration, sequence: int) -> None:
        plane = buffer.planes[0]
        with mmap.mmap(plane.fd, plane.length) as memory:
            memory[:] = bytes([sequence % 256]) * plane.length  # every byte = the frame number mod 256
        buffer.metadata.sequence = sequence
        buffer.metadata.status = FrameMetadata.Status.Success


class CameraManager:
    _instance: CameraManager | None = None
    fail_configure = False  # the tests' switch for a camera that refuses its configuration

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK)
        self.cameras = [Camera(self)]
        self._ready: list[Request] = []
        self._lock = threading.Lock()

    @classmethod
    def singleton(cls) -> CameraManager:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    @property
    def event_fd(self) -> int:
        return self._read_fd

    def complete(self, requests: list[Request]) -> None:
        with self._lock:
            self._ready += requests
        if requests:
            os.write(self._write_fd, b"\x01")

    def get_ready_requests(self) -> list[Request]:
        with contextlib.suppress(BlockingIOError):
            os.read(self._read_fd, 4096)
        with self._lock:
            ready, self._ready = self._ready, []
        return ready

    def get(self, camera_id: str) -> Camera:
        for camera in self.cameras:
            if camera.id == camera_id:
                return camera
        raise KeyError(camera_id)

    find = get
