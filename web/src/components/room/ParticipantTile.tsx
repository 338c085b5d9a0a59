// Another participant's tile: their camera (or why there is none), their microphone, who they
// are and what state they are in, and an interviewer's moderation buttons.

import type { ComponentChildren } from 'preact';
import type { ParticipantInfo, RoomConnection, TrackInfo } from '../../rtc';
import { Media } from './Media';

/** A remote track as the room knows it: what the server announced, and the browser's track. */
export interface RemoteTrack {
  info?: TrackInfo;
  track?: MediaStreamTrack;
}

/** What an interviewer may do on this tile; absent buttons are not offered. */
export interface Moderation {
  addPhone?: () => void;
  removePhone?: () => void;
  /** Called after the removal was confirmed and sent. */
  remove: () => void;
}

interface Props {
  person: ParticipantInfo;
  camera?: RemoteTrack;
  microphone?: RemoteTrack;
  connection: RoomConnection;
  speaking: boolean;
  /** The candidate's phone status, where it is shown. */
  phoneBadge: ComponentChildren;
  moderation?: Moderation;
}

/**
 * The picture with its caption and status badges on it; an interviewer's buttons in a bar under
 * it, where they cover nothing.
 */
export function ParticipantTile({ person: p, camera: video, microphone: audio, connection, speaking, phoneBadge, moderation }: Props) {
  return (
    <div class="tile-cell">
      <figure class={speaking ? 'tile speaking' : 'tile'} data-participant={p.identity}>
        {video?.track && !video.info?.muted && !video.info?.unplayable ? (
          <Media track={video.track} kind="video" label={`${p.name}'s camera`}
            shown={video.info ? { connection, trackId: video.info.id } : undefined} />
        ) : (
          <div class="no-video">
            {video?.info?.unplayable
              ? `Cannot play this camera${typeof video.info.unplayable === 'string' ? ` (${video.info.unplayable})` : ''}`
              : video?.info?.muted ? 'Camera off' : 'No video'}
          </div>
        )}
        {audio?.track && <Media track={audio.track} kind="audio" label={`${p.name}'s microphone`} />}
        <figcaption>
          {p.name} · {p.role}
          {p.reconnecting && <span class="badge">reconnecting</span>}
          {!p.reconnecting && (p.connection === 'fair' || p.connection === 'poor') && (
            <span class="badge" title="As the server sees it: packets lost or slow round trips">
              {p.connection} connection
            </span>
          )}
          {video?.info?.stalled && !video.info.muted && !p.reconnecting && (
            <span class="badge" title="Their video stopped reaching the server: the picture is frozen for everyone">
              video paused
            </span>
          )}
          {speaking && <span class="badge">speaking</span>}
          {audio?.info?.muted && <span class="badge">muted</span>}
        </figcaption>
        {phoneBadge && <div class="tile-status">{phoneBadge}</div>}
      </figure>
      {moderation && (
        <div class="tile-actions" role="group" aria-label={`Moderate ${p.name}`}>
          {moderation.addPhone && (
            <button type="button" class="secondary small" aria-label={`Add ${p.name}'s phone camera`}
              onClick={moderation.addPhone}>
              Add phone
            </button>
          )}
          {moderation.removePhone && (
            <button type="button" class="secondary small" aria-label={`Remove ${p.name}'s phone`}
              onClick={moderation.removePhone}>
              Remove phone
            </button>
          )}
          {audio?.info && !audio.info.muted && (
            <button type="button" class="secondary small" aria-label={`Mute ${p.name}`}
              onClick={() => audio.info && connection.moderateMute(audio.info.id)}>
              Mute
            </button>
          )}
          <button type="button" class="danger small" aria-label={`Remove ${p.name} from the room`}
            onClick={() => {
              if (!window.confirm(`Remove ${p.name} from the room? They stay out until you let them back in.`)) return;
              connection.moderateRemove(p.identity);
              moderation.remove();
            }}>
            Remove
          </button>
        </div>
      )}
    </div>
  );
}
