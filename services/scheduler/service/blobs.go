package service

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Large payloads live in sched_blobs, addressed by their SHA-256, and events refer to them
// (docs/architecture.md, "Event size"): a pipeline file may be up to 1 MiB, an event at
// most event.MaxEventBytes. A blob is written by the decision that records the event
// naming it (recorded.blobs), after the append and in its transaction, so an event never
// names a blob that is missing; a file that did not change between commits is kept once.

// blobKey is the content address of data: its SHA-256 as lowercase hex.
func blobKey(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// putBlobs stores the blobs of evs through tx; a blob already stored is left alone.
func (s *Service) putBlobs(ctx context.Context, tx execer, evs []recorded) error {
	for _, e := range evs {
		for _, b := range e.blobs {
			_, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO sched_blobs (sha256, size, data, created_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (sha256) DO NOTHING`), blobKey(b), len(b), b, time.Now().UnixNano())
			if err != nil {
				return fmt.Errorf("store blob: %w", err)
			}
		}
	}
	return nil
}

// errNoBlob: no blob is stored under the key an event named.
var errNoBlob = errors.New("not in the scheduler's blob store")

// blob reads the blob stored under key and checks it is what the key says.
func (s *Service) blob(ctx context.Context, key string) ([]byte, error) {
	var data []byte
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT data FROM sched_blobs WHERE sha256 = ?`), key).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("blob %s: %w", key, errNoBlob)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", key, err)
	}
	if got := blobKey(data); got != key {
		return nil, fmt.Errorf("blob %s: stored bytes hash to %s", key, got)
	}
	return data, nil
}
