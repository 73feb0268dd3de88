"""Draw a scene of :class:`SceneItem` headless (open3d ``OffscreenRenderer``) or in a window.

Headless rendering runs on a CPU machine through Filament's Vulkan backend on Mesa's llvmpipe
(Debian ``libvulkan1 mesa-vulkan-drivers``). Materials are unlit and post-processing is off, so a
pixel shows exactly the baked vertex colour of the surface in front.
"""
import multiprocessing
import os
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import open3d as o3d
from open3d.visualization import rendering

from drivepi.geometry import OCC_RANGE

from .palette import BACKGROUND_COLOR
from .scene import SceneItem


@dataclass(frozen=True)
class View:
    """A camera for a scene in the ego frame (metres).

    ``kind='top'`` is an orthographic bird's-eye view of the (x, y) window ``extent =
    (x_min, y_min, x_max, y_max)``, x (forward) pointing up the image, y (left) to the left; the
    window is centred and widened along one axis to the image's aspect. With a matching aspect, pixel
    ``(row, col)`` sees ``x = x_max - (row + 0.5) * dx``, ``y = y_max - (col + 0.5) * dy``.
    ``kind='perspective'`` looks from ``eye`` at ``center`` with vertical field of view ``fov`` deg.
    """
    kind: str = 'perspective'
    eye: Tuple[float, float, float] = (-32.0, 0.0, 38.0)
    center: Tuple[float, float, float] = (8.0, 0.0, 0.0)
    up: Tuple[float, float, float] = (1.0, 0.0, 1.0)
    fov: float = 55.0
    extent: Tuple[float, float, float, float] = (OCC_RANGE[0], OCC_RANGE[1], OCC_RANGE[3], OCC_RANGE[4])


TOP_VIEW = View(kind='top')
CHASE_VIEW = View()


def _material(item: SceneItem) -> rendering.MaterialRecord:
    """Unlit material that shows vertex colours; lines get their pixel width."""
    material = rendering.MaterialRecord()
    if isinstance(item.geometry, o3d.geometry.LineSet):
        material.shader = 'unlitLine'
        material.line_width = item.line_width
    else:
        material.shader = 'defaultUnlit'
    return material


def _filament_geometry(geometry: o3d.geometry.Geometry):
    """``geometry`` in a form whose upload to Filament initialises every vertex attribute.

    open3d's upload of a legacy ``TriangleMesh`` without ``triangle_uvs`` declares a UV attribute but
    never writes it, so the UVs are whatever the recycled heap held (they depend on everything the
    process, or the parent it was forked from, allocated before: imports such as peft or mmcv.ops,
    earlier frames). ``defaultUnlit`` samples its 1x1 white albedo texture at these UVs: the picture
    is right, but llvmpipe's texture sampling on garbage UVs makes each frame 5-100x slower. The
    tensor mesh's upload zero-fills missing UVs and keeps every vertex (zero legacy UVs would merge
    vertices that share a position, mixing the colours of adjacent faces).
    """
    if isinstance(geometry, o3d.geometry.TriangleMesh):
        return o3d.t.geometry.TriangleMesh.from_legacy(geometry)
    return geometry


def _setup_camera(renderer: rendering.OffscreenRenderer, view: View, width: int, height: int) -> None:
    """Point the renderer's camera as ``view`` says."""
    if view.kind == 'perspective':
        renderer.setup_camera(view.fov, list(view.center), list(view.eye), list(view.up))
        return
    if view.kind != 'top':
        raise ValueError(f"view kind must be 'top' or 'perspective', got {view.kind!r}")
    x0, y0, x1, y1 = view.extent
    # widen the window along one axis so that it has the image's aspect (pixels stay square)
    half_x = max((x1 - x0) / 2, (y1 - y0) / 2 * height / width)
    half_y = half_x * width / height
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    camera = renderer.scene.camera
    # camera axes: image right = -y, image up = +x
    camera.set_projection(rendering.Camera.Projection.Ortho, -half_y, half_y, -half_x, half_x, 1.0, 1000.0)
    camera.look_at([cx, cy, 0.0], [cx, cy, 500.0], [1.0, 0.0, 0.0])


def render_offscreen(items: Sequence[SceneItem], width: int = 800, height: int = 800,
                     view: View = CHASE_VIEW, background=BACKGROUND_COLOR) -> np.ndarray:
    """Render one scene headless; uint8 image (height, width, 3). See :func:`render_offscreen_many`."""
    return render_offscreen_many([items], width, height, [view], background)[0]


def render_offscreen_many(scenes: Sequence[Sequence[SceneItem]], width: int = 800, height: int = 800,
                          views: Sequence[View] = (CHASE_VIEW,), background=BACKGROUND_COLOR) -> List[np.ndarray]:
    """Render several scenes headless, each from its view, in one fresh child process.

    Every call forks a child that builds one ``OffscreenRenderer``, adds all scenes, shows one scene
    at a time, and exits, so Filament's process-wide engine never lives in the caller (a renderer torn
    down with geometry still in its scene aborts the whole process with a ``PreconditionPanic``).
    Meshes go through :func:`_filament_geometry`, without which frames are 5-100x slower.

    Args:
        scenes: lists of :class:`SceneItem` (e.g. GT and prediction from ``build_scene``).
        width, height: image size in pixels.
        views: one :class:`View` per scene, or a single one for all.
        background: uint8 RGB.

    Returns:
        list of uint8 images (height, width, 3), one per scene.
    """
    views = list(views) * len(scenes) if len(views) == 1 else list(views)
    if len(views) != len(scenes):
        raise ValueError(f'{len(scenes)} scenes but {len(views)} views')
    context = multiprocessing.get_context('fork')
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_render_in_child, args=(sender, scenes, width, height, views, background))
    child.start()
    sender.close()
    try:
        result = receiver.recv()
    except EOFError:
        result = RuntimeError('headless render process died without an image (open3d OffscreenRenderer '
                              'needs Vulkan: Debian libvulkan1 + mesa-vulkan-drivers on a CPU machine)')
    child.join()
    if isinstance(result, BaseException):
        raise result
    return result


def _render_in_child(sender, scenes, width: int, height: int, views, background) -> None:
    """Child-process body of :func:`render_offscreen_many`: sends the images or the exception."""
    try:
        renderer = rendering.OffscreenRenderer(width, height)
        renderer.scene.set_background(list(np.asarray(background, np.float64) / 255.0) + [1.0])
        renderer.scene.view.set_post_processing(False)
        for index, items in enumerate(scenes):
            for item in items:
                renderer.scene.add_geometry(f'{index}/{item.name}', _filament_geometry(item.geometry),
                                            _material(item))
        images = []
        for index, view in enumerate(views):
            for other, items in enumerate(scenes):
                for item in items:
                    renderer.scene.show_geometry(f'{other}/{item.name}', other == index)
            _setup_camera(renderer, view, width, height)
            images.append(np.array(renderer.render_to_image()))
        sender.send(images)
    except Exception as err:  # handed to the parent, which raises it
        sender.send(err)
    finally:
        sender.close()


def has_display() -> bool:
    """True when an X11 or Wayland display is available for an interactive window."""
    return bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))


def show_interactive(items: Sequence[SceneItem], title: str = 'DrivePI occupancy') -> None:
    """Open an interactive open3d window (mouse to orbit); needs a display.

    Raises:
        RuntimeError: when no display is available (use :func:`render_offscreen` instead).
    """
    if not has_display():
        raise RuntimeError('no display (DISPLAY / WAYLAND_DISPLAY unset): write a PNG with '
                           'render_offscreen instead of opening a window')
    o3d.visualization.draw_geometries([item.geometry for item in items], window_name=title)
