import { useEffect, useState } from 'preact/hooks';
import { useApp, useChat } from './context';
import { FormError, useBusy } from './forms';
import { Modal } from './Modal';

/** One's own settings: read receipts, and the browser's notifications. */
export function SettingsDialog({ onClose }: { onClose: () => void }) {
  const chat = useChat();
  const me = useApp((s) => s.me);
  const permission = useApp((s) => s.notifications);
  const { busy, error, run } = useBusy();
  // What was just asked for, shown while the server is asked (then its answer is).
  const [wanted, setWanted] = useState<boolean | null>(null);
  useEffect(() => {
    void chat.loadSettings();
  }, []);
  const privateReceipts = wanted ?? me?.private_receipts ?? false;
  return (
    <Modal title="Settings" onClose={onClose} testid="settings-dialog">
      <div class="stack">
        <section class="setting">
          <label class="check-row">
            <input
              type="checkbox"
              data-testid="private-receipts-toggle"
              checked={privateReceipts}
              disabled={busy || !me}
              onChange={(e) => {
                const on = e.currentTarget.checked;
                setWanted(on);
                void run(async () => {
                  try {
                    await chat.setPrivateReceipts(on);
                  } finally {
                    setWanted(null);
                  }
                });
              }}
            />
            <span>Keep read receipts private</span>
          </label>
          <p class="muted small">
            Nobody is shown how far you have read (the “Seen by” under their messages). Your own unread counts are not affected.
          </p>
          <FormError error={error} />
        </section>
        <section class="setting">
          <h3 class="setting-title">Desktop notifications</h3>
          <NotificationPermissionLine permission={permission} onEnable={() => void chat.enableNotifications()} />
          <p class="muted small">Which messages notify you is chosen per room, in the room’s header.</p>
        </section>
        <div class="row-end">
          <button type="button" data-testid="settings-close" onClick={onClose}>
            Done
          </button>
        </div>
      </div>
    </Modal>
  );
}

function NotificationPermissionLine({ permission, onEnable }: { permission: NotificationPermission | 'unsupported'; onEnable: () => void }) {
  switch (permission) {
    case 'granted':
      return <p data-testid="notifications-status">On in this browser.</p>;
    case 'denied':
      return <p data-testid="notifications-status">Blocked in this browser: allow them in the site’s settings.</p>;
    case 'unsupported':
      return <p data-testid="notifications-status">Not supported in this browser.</p>;
    default:
      return (
        <p>
          {/* A click asks the browser: permission is never requested on load. */}
          <button type="button" class="primary" data-testid="settings-notifications-enable" onClick={onEnable}>
            Turn on desktop notifications
          </button>
        </p>
      );
  }
}
