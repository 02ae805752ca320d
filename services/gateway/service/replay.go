package service

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/simpleci/simpleci/libs/platform/sqldb"
)

// Replay protection for webhooks (docs/security.md, "Events and webhooks"). A forge's
// signature covers the body only, with no time in it, so a captured delivery stays valid for
// ever: sent again under a new delivery id it would start another run. The gateway keeps the
// SHA-256 of each signed body it accepted, per project, for a window (gw_webhook_bodies):
//   - the same body with the same delivery id is the forge retrying or redelivering: it is
//     let through and names the same run (the scheduler starts a run id once);
//   - the same body with another delivery id, or without one, is a replay: 409;
//   - after the window a body is forgotten. The table holds one window's accepted deliveries,
//     at most the webhook rate limit times the window per project.

// DefaultReplayWindow is how long an accepted body is remembered.
const DefaultReplayWindow = 7 * 24 * time.Hour

type replays struct {
	db     *sqldb.DB
	window time.Duration
}

// seenBody is an accepted delivery of a body.
type seenBody struct {
	deliveryID, runID string
	at                time.Time
}

// errReplay: the body was accepted before under another delivery.
var errReplay = errors.New("replayed webhook body")

func bodyKey(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// claim records that project accepts body as delivery (run runID). It fails with errReplay
// (and returns the earlier delivery) when the body was accepted within the window under
// another delivery id, or when neither has one.
func (r *replays) claim(ctx context.Context, project, delivery, runID string, body []byte) (seenBody, error) {
	key, now := bodyKey(body), time.Now()
	var prior seenBody
	err := r.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, r.db.Q(`INSERT INTO gw_webhook_bodies (project_id, body_sha256, delivery_id, run_id, seen_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, body_sha256) DO NOTHING`), project, key, delivery, runID, now.UnixNano())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		var at int64
		if err := tx.QueryRowContext(ctx, r.db.Q(`SELECT delivery_id, run_id, seen_at FROM gw_webhook_bodies WHERE project_id = ? AND body_sha256 = ?`),
			project, key).Scan(&prior.deliveryID, &prior.runID, &at); err != nil {
			return err
		}
		prior.at = time.Unix(0, at)
		switch {
		case now.Sub(prior.at) >= r.window: // expired, not pruned yet: this is a new delivery
			_, err := tx.ExecContext(ctx, r.db.Q(`UPDATE gw_webhook_bodies SET delivery_id = ?, run_id = ?, seen_at = ? WHERE project_id = ? AND body_sha256 = ?`),
				delivery, runID, now.UnixNano(), project, key)
			return err
		case delivery != "" && prior.deliveryID == delivery: // the forge again
			return nil
		}
		return errReplay
	})
	if err != nil && !errors.Is(err, errReplay) {
		return prior, fmt.Errorf("check the webhook body against earlier deliveries: %w", err)
	}
	return prior, err
}

// forget removes what claim recorded for a delivery that was then not accepted, so that the
// sender may retry it.
func (r *replays) forget(ctx context.Context, project, runID string, body []byte) error {
	_, err := r.db.ExecContext(ctx, r.db.Q(`DELETE FROM gw_webhook_bodies WHERE project_id = ? AND body_sha256 = ? AND run_id = ?`),
		project, bodyKey(body), runID)
	return err
}

// prune deletes the bodies older than the window.
func (r *replays) prune(ctx context.Context) (int64, error) {
	res, err := r.db.ExecContext(ctx, r.db.Q(`DELETE FROM gw_webhook_bodies WHERE seen_at < ?`), time.Now().Add(-r.window).UnixNano())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
