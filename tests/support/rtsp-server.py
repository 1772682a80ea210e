#!/usr/bin/env python3
"""An RTSP server for the pull tests: GStreamer's gst-rtsp-server serving
the H.264 video of an FLV file at rtsp://127.0.0.1:PORT/PATH, in real time,
to each client from the file's start.

    rtsp-server.py PORT /live/cam clip.flv

Needs python3-gi, gir1.2-gst-rtsp-server-1.0 and gstreamer1.0-plugins-good
(scripts/setup --test installs them). Prints "listening" once bound.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

port, path, clip = sys.argv[1], sys.argv[2], sys.argv[3]
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
clip = clip.replace("\\", "\\\\").replace('"', '\\"')
factory.set_launch(f'( filesrc location="{clip}" ! flvdemux name=d d.video ! queue ! capssetter caps="video/x-h264,alignment=(string)au" ! rtph264pay name=pay0 pt=96 config-interval=-1 )')
factory.set_shared(False)
server.get_mount_points().add_factory(path, factory)
if server.attach(None) == 0:
    sys.exit(f"cannot listen on 127.0.0.1:{port}")
print("listening", flush=True)
GLib.MainLoop().run()
