"""A participant on a WebRTC stack nobody at Sightline wrote: aiortc (Python).

Signs in, joins an interview's room over the signaling protocol (docs/PROTOCOL.md), publishes a
camera and a microphone (aiortc's own generated video and silence, encoded by aiortc as VP8 and
Opus) and receives everyone else's tracks, decoding them with aiortc's decoders. Once a second
it prints one JSON line of what it decoded, per remote track:

    {"tracks": {"t3": {"kind": "video", "frames": 41, "width": 640}}, "unplayable": [], "resets": 0}

`unplayable` lists the tracks the server said this client cannot decode (`track_unplayable`).
--send-video CODEC publishes the camera in that codec alone (e.g. H264). It stays for --seconds,
then leaves. Used by tests/e2e/interop.test.mjs.
"""

import argparse
import asyncio
import json
import os
import sys
import urllib.request

import websockets
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack


def post(url, body, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def video_codecs(name):
    """aiortc's video codecs limited to `name` and retransmission."""
    wanted = ("video/" + name.lower(), "video/rtx")
    return [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() in wanted]


class Participant:
    def __init__(self, ws, send_video=None):
        self.ws = ws
        self.send_video = send_video
        self.unplayable = []
        self.publisher = RTCPeerConnection()
        self.subscriber = None
        self.decoded = {}
        self.resets = 0
        self.tasks = set()
        self.new_subscriber()

    def new_subscriber(self):
        self.subscriber = RTCPeerConnection()
        self.subscriber.on("track", self.on_track)

    def on_track(self, track):
        entry = {"kind": track.kind, "frames": 0}
        self.decoded[track.id] = entry
        task = asyncio.ensure_future(self.consume(track, entry))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def consume(self, track, entry):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            entry["frames"] += 1
            if track.kind == "video":
                entry["width"] = frame.width

    async def send(self, message):
        await self.ws.send(json.dumps(message))

    async def publish(self):
        video = self.publisher.addTransceiver(VideoStreamTrack(), direction="sendonly")
        if self.send_video:
            video.setCodecPreferences(video_codecs(self.send_video))
        audio = self.publisher.addTransceiver(AudioStreamTrack(), direction="sendonly")
        # aiortc gathers its candidates before the description is set: no trickle needed.
        await self.publisher.setLocalDescription(await self.publisher.createOffer())
        await self.send(
            {
                "type": "publish_offer",
                "sdp": self.publisher.localDescription.sdp,
                "tracks": [
                    {"mid": video.mid, "source": "camera"},
                    {"mid": audio.mid, "source": "microphone"},
                ],
            }
        )

    async def handle(self, message):
        kind = message.get("type")
        if kind == "publish_answer":
            await self.publisher.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
        elif kind == "subscriber_offer":
            await self.subscriber.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
            await self.subscriber.setLocalDescription(await self.subscriber.createAnswer())
            await self.send({"type": "subscriber_answer", "sdp": self.subscriber.localDescription.sdp})
        elif kind == "track_unplayable":
            self.unplayable.append(message["track"])
        elif kind == "subscriber_reset":
            self.resets += 1
            await self.subscriber.close()
            self.new_subscriber()
        elif kind == "media_reset":
            raise SystemExit("the server reset this client's media; not expected in this test")
        elif kind in ("error", "removed"):
            raise SystemExit(f"the server said: {json.dumps(message)}")

    def report(self):
        report = {"tracks": self.decoded, "unplayable": self.unplayable, "resets": self.resets}
        print(json.dumps(report), flush=True)

    async def close(self):
        await self.publisher.close()
        await self.subscriber.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--interview", required=True)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--send-video", help="publish the camera in this codec alone")
    args = parser.parse_args()
    password = os.environ["SIGHTLINE_FAKE_PASSWORD"]
    base = args.base.rstrip("/")

    session = post(f"{base}/api/auth/login", {"email": args.email, "password": password})
    grant = post(f"{base}/api/interviews/{args.interview}/join", {}, session["access_token"])
    ws_base = base.replace("http", "ws", 1)
    async with websockets.connect(f"{ws_base}/rtc/{grant['room']}") as ws:
        participant = Participant(ws, args.send_video)
        await participant.send({"type": "join", "version": 1, "token": grant["token"]})
        joined = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if joined.get("type") != "joined":
            raise SystemExit(f"not admitted: {json.dumps(joined)}")
        await participant.publish()
        loop = asyncio.get_running_loop()
        until = loop.time() + args.seconds
        next_report = loop.time() + 1
        try:
            while loop.time() < until:
                try:
                    text = await asyncio.wait_for(ws.recv(), 0.25)
                    await participant.handle(json.loads(text))
                except asyncio.TimeoutError:
                    pass
                if loop.time() >= next_report:
                    participant.report()
                    next_report += 1
            await participant.send({"type": "leave"})
        finally:
            await participant.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
