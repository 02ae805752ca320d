package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// PoisonDir is the poison queue of the embedded bus kept in a directory, so that another
// process (`simpleci admin poison`) can read it while `simpleci dev` runs:
//
//	DIR/<id>.json         one poisoned message (written to a temporary file and renamed)
//	DIR/replay/<id>       a replay request, carried out by the bus that owns DIR
//
// Only the bus process publishes into the in-process bus, so Replay only files a request:
// the running bus (NewGoChannel with WithPoisonDir) re-publishes the message within
// PoisonDirPoll and removes the request; with no bus running, the next one started on the
// directory does. Records are never removed by SimpleCI; delete the files to forget them.
type PoisonDir struct {
	dir    string
	n      atomic.Int64
	logger *slog.Logger // set by the bus that owns it
}

// PoisonDirPoll is how often the bus that owns a PoisonDir looks for replay requests.
const PoisonDirPoll = 250 * time.Millisecond

// OpenPoisonDir returns the poison queue kept in dir (which need not exist yet).
func OpenPoisonDir(dir string) *PoisonDir { return &PoisonDir{dir: dir} }

// Dir is the directory the queue is kept in.
func (d *PoisonDir) Dir() string { return d.dir }

type poisonFile struct {
	ID       string            `json:"id"`
	Topic    string            `json:"topic"`
	Group    string            `json:"group"`
	Error    string            `json:"error"`
	At       time.Time         `json:"at"`
	Message  string            `json:"message_id"`
	Key      string            `json:"key"`
	Type     string            `json:"type"`
	Payload  []byte            `json:"payload"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Publish stores poisoned messages (the poison middleware's publisher).
func (d *PoisonDir) Publish(_ string, msgs ...*message.Message) error {
	for _, wm := range msgs {
		if _, err := d.Add(poisonRecord("", wm)); err != nil {
			return err
		}
	}
	return nil
}

// Add stores p as a new record and returns it with its id (p.ID is ignored). The bus adds
// what its consumers give up on; Add is for tools that move records between queues.
func (d *PoisonDir) Add(p Poisoned) (Poisoned, error) {
	if err := os.MkdirAll(filepath.Join(d.dir, "replay"), 0o700); err != nil {
		return p, fmt.Errorf("bus: poison dir: %w", err)
	}
	if p.At.IsZero() {
		p.At = time.Now().UTC()
	}
	p.ID = fmt.Sprintf("%d-%d", time.Now().UnixNano(), d.n.Add(1))
	b, err := json.Marshal(poisonFile{ID: p.ID, Topic: p.Topic, Group: p.Group, Error: p.Error, At: p.At,
		Message: p.Message.ID, Key: p.Message.Key, Type: p.Message.Type, Payload: p.Message.Payload, Metadata: p.Message.Metadata})
	if err != nil {
		return p, err
	}
	if err := writeAtomic(filepath.Join(d.dir, p.ID+".json"), b); err != nil {
		return p, fmt.Errorf("bus: poison dir: %w", err)
	}
	return p, nil
}

// Close implements message.Publisher; there is nothing to release.
func (d *PoisonDir) Close() error { return nil }

// SetAside implements PoisonQueue.
func (d *PoisonDir) SetAside(_ context.Context, p Poisoned) error {
	return stampingPublisher{pub: d, logger: orDiscard(d.logger)}.Publish("", setAsideMessage(p))
}

// List implements PoisonQueue.
func (d *PoisonDir) List(ctx context.Context, topic string, limit int) ([]Poisoned, error) {
	entries, err := os.ReadDir(d.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bus: poison dir: %w", err)
	}
	var all []Poisoned
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, err := d.read(name)
		if err != nil {
			return nil, err
		}
		all = append(all, p)
	}
	slices.SortFunc(all, func(a, b Poisoned) int { return a.At.Compare(b.At) })
	return pick(all, topic, limit), nil
}

func (d *PoisonDir) read(id string) (Poisoned, error) {
	b, err := os.ReadFile(filepath.Join(d.dir, id+".json"))
	if err != nil {
		return Poisoned{}, fmt.Errorf("bus: poison record %s: %w", id, err)
	}
	var f poisonFile
	if err := json.Unmarshal(b, &f); err != nil {
		return Poisoned{}, fmt.Errorf("bus: poison record %s: %w", id, err)
	}
	return Poisoned{ID: f.ID, Topic: f.Topic, Group: f.Group, Error: f.Error, At: f.At,
		Message: Message{ID: f.Message, Key: f.Key, Type: f.Type, Payload: f.Payload, Metadata: f.Metadata}}, nil
}

// Replay files a replay request for p, carried out by the bus that owns the directory.
func (d *PoisonDir) Replay(_ context.Context, p Poisoned) error {
	if p.ID == "" || strings.ContainsAny(p.ID, `/\`) || strings.HasPrefix(p.ID, ".") {
		return fmt.Errorf("bus: replay: bad poison record id %q", p.ID)
	}
	if _, err := os.Stat(filepath.Join(d.dir, p.ID+".json")); err != nil {
		return fmt.Errorf("bus: replay %s: %w", p.ID, err)
	}
	if err := os.MkdirAll(filepath.Join(d.dir, "replay"), 0o700); err != nil {
		return fmt.Errorf("bus: replay %s: %w", p.ID, err)
	}
	return writeAtomic(filepath.Join(d.dir, "replay", p.ID), nil)
}

// serveReplays carries out the replay requests in d through b until stop closes.
func (d *PoisonDir) serveReplays(b Bus, logger *slog.Logger, stop <-chan struct{}) {
	tick := time.NewTicker(PoisonDirPoll)
	defer tick.Stop()
	for {
		d.replayRequested(b, logger, stop)
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

func (d *PoisonDir) replayRequested(b Bus, logger *slog.Logger, stop <-chan struct{}) {
	entries, err := os.ReadDir(filepath.Join(d.dir, "replay"))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			logger.Warn("bus: poison dir: read replay requests", slog.Any("err", err))
		}
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // Publish waits when a topic's queue is full: stop ends the wait
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for _, e := range entries {
		id := e.Name()
		if strings.HasPrefix(id, ".") || e.IsDir() {
			continue
		}
		req := filepath.Join(d.dir, "replay", id)
		p, err := d.read(id)
		if err == nil {
			err = replay(ctx, b, p)
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return
			}
			logger.Error("bus: poison dir: replay failed; the request is dropped", slog.String("record", id), slog.Any("err", err))
		} else {
			logger.Info("bus: poisoned message replayed", slog.String("record", id), slog.String("topic", p.Topic),
				slog.String("message_id", p.Message.ID))
		}
		if err := os.Remove(req); err != nil {
			logger.Warn("bus: poison dir: remove replay request", slog.String("record", id), slog.Any("err", err))
		}
	}
}

// writeAtomic writes b to path through a temporary file in the same directory, so a reader
// never sees a partial file.
func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}
