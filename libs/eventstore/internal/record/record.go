// Package record holds the rules every eventstore implementation applies the
// same way: what a valid append is, how metadata is encoded, and how an
// append whose event ids are already stored is classified.
package record

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/simpleci/simpleci/libs/eventstore"
)

// Validate checks an append before it touches the database. Errors wrap
// eventstore.ErrInvalidArgument.
func Validate(streamID string, expected int64, events []eventstore.Event) error {
	if streamID == "" {
		return fmt.Errorf("%w: empty stream id", eventstore.ErrInvalidArgument)
	}
	if expected < eventstore.ExpectAny {
		return fmt.Errorf("%w: expected version %d (use ExpectAny, ExpectNoStream or a version >= 1)",
			eventstore.ErrInvalidArgument, expected)
	}
	seen := make(map[string]struct{}, len(events))
	for i, e := range events {
		if e.ID == "" {
			return fmt.Errorf("%w: event %d: empty id", eventstore.ErrInvalidArgument, i)
		}
		if _, dup := seen[e.ID]; dup {
			return fmt.Errorf("%w: event %d: id %q appears twice in one append", eventstore.ErrInvalidArgument, i, e.ID)
		}
		seen[e.ID] = struct{}{}
		if e.Type == "" {
			return fmt.Errorf("%w: event %s: empty type", eventstore.ErrInvalidArgument, e.ID)
		}
		for k, v := range e.Metadata {
			if err := checkJSONString(k); err != nil {
				return fmt.Errorf("%w: event %s: metadata key %q: %v", eventstore.ErrInvalidArgument, e.ID, k, err)
			}
			if err := checkJSONString(v); err != nil {
				return fmt.Errorf("%w: event %s: metadata %q value: %v", eventstore.ErrInvalidArgument, e.ID, k, err)
			}
		}
	}
	return nil
}

// checkJSONString rejects what JSON (and PostgreSQL's jsonb) cannot carry
// unchanged: invalid UTF-8 is silently replaced by encoding/json, and jsonb
// refuses \u0000.
func checkJSONString(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("contains NUL")
	}
	return nil
}

// EncodeMetadata returns the JSON form of m, or nil when m is empty (stored
// as NULL).
func EncodeMetadata(m map[string]string) ([]byte, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	return b, nil
}

// DecodeMetadata is the inverse of EncodeMetadata: NULL, "null" and "{}" all
// decode to nil.
func DecodeMetadata(b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode metadata: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// Payload normalises an empty payload to nil, so both stores read back the
// same value.
func Payload(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Outcome classifies an append whose ids may already be stored.
type Outcome int

const (
	// New means none of the ids is stored: the append proceeds (or, after a
	// conflict, the conflict was a real version conflict).
	New Outcome = iota
	// Redelivered means every id is already stored in the target stream: the
	// append is a no-op that succeeds.
	Redelivered
	// Duplicate means some ids are stored and some are not, or an id is stored
	// in another stream: the append fails with ErrDuplicateEvent.
	Duplicate
)

// Classify decides the Outcome from ids (the append's event ids) and stored
// (event id -> stream id of those ids already in the store).
func Classify(streamID string, ids []string, stored map[string]string) (Outcome, error) {
	if len(stored) == 0 {
		return New, nil
	}
	var foreign, missing []string
	for _, id := range ids {
		s, ok := stored[id]
		switch {
		case !ok:
			missing = append(missing, id)
		case s != streamID:
			foreign = append(foreign, fmt.Sprintf("%s (in stream %s)", id, s))
		}
	}
	switch {
	case len(foreign) > 0:
		return Duplicate, fmt.Errorf("%w: %s", eventstore.ErrDuplicateEvent, strings.Join(foreign, ", "))
	case len(missing) > 0:
		return Duplicate, fmt.Errorf("%w: %d of %d ids already stored in stream %s, new: %s",
			eventstore.ErrDuplicateEvent, len(ids)-len(missing), len(ids), streamID, strings.Join(missing, ", "))
	default:
		return Redelivered, nil
	}
}

// IDs returns the events' ids in order.
func IDs(events []eventstore.Event) []string {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	return ids
}
