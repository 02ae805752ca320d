package service

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// stuckSink is a log service that is away: a batch fails the first failures calls and
// blocks until release is closed.
type stuckSink struct {
	release  chan struct{}
	mu       sync.Mutex
	failures int
	seqs     []int64
	batches  []int
	refuse   bool
}

func (s *stuckSink) send(ctx context.Context, chunks []*runnerv1.LogChunk) error {
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse {
		return permanent{status.Error(codes.PermissionDenied, "append logs: the log grant expired")}
	}
	if s.failures > 0 {
		s.failures--
		return errors.New("rpc error: code = Unavailable desc = connection refused")
	}
	for _, c := range chunks {
		s.seqs = append(s.seqs, c.Sequence)
	}
	s.batches = append(s.batches, len(chunks))
	return nil
}

func chunkOf(seq int64, size int) *runnerv1.LogChunk {
	return &runnerv1.LogChunk{Sequence: seq, Data: make([]byte, size)}
}

// The engine calls Log with its output lock held: while Log waits, no output is read,
// and a command that exits meanwhile loses its unread output after engine.WaitDelay.
// So chunks must be handed over at once however long the log service takes, and the
// job's end must wait until they are all sent, in order, through failures, in batches.
func TestLogQueueHandsOverAtOnceAndSendsEverythingInOrder(t *testing.T) {
	s := &stuckSink{release: make(chan struct{}), failures: 3}
	q := newLogQueue(s.send, slog.New(slog.DiscardHandler))
	var want []int64
	start := time.Now()
	for i := int64(1); i <= 3000; i++ {
		want = append(want, i)
		q.push(chunkOf(i, 5))
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("push waited %s for the log service", d)
	}
	closed := make(chan struct{})
	go func() { q.close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("close returned while the chunks were not sent")
	case <-time.After(100 * time.Millisecond):
	}
	close(s.release) // the log service is back
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("close did not return after the log service came back")
	}
	if !slices.Equal(s.seqs, want) {
		t.Fatalf("sent %d chunks out of order or incomplete", len(s.seqs))
	}
	// The first batch took one chunk (the queue's run took it before the rest came);
	// the others as many as a batch holds: far fewer calls than chunks.
	if len(s.batches) > 5 || slices.Max(s.batches) != maxBatchChunks {
		t.Fatalf("batches %v: want at most %d chunks a batch, and few batches", s.batches, maxBatchChunks)
	}
}

// A batch holds at most maxBatchBytes of output (one larger chunk alone).
func TestLogQueueBatchBytes(t *testing.T) {
	s := &stuckSink{release: make(chan struct{})}
	q := newLogQueue(s.send, slog.New(slog.DiscardHandler))
	for i := int64(1); i <= 10; i++ {
		q.push(chunkOf(i, maxBatchBytes/3))
	}
	q.push(chunkOf(11, 2*maxBatchBytes))
	close(s.release)
	q.close()
	if len(s.seqs) != 11 {
		t.Fatalf("sent %v", s.seqs)
	}
	for i, n := range s.batches {
		if n > 3 {
			t.Fatalf("batch %d of %v holds %d chunks of a third of maxBatchBytes", i, s.batches, n)
		}
	}
	if s.batches[len(s.batches)-1] != 1 {
		t.Fatalf("batches %v: the chunk larger than a batch goes alone", s.batches)
	}
}

// A refused batch (a grant no longer accepted) is given up at once, not retried for
// logPatience: the job's end does not wait for it.
func TestLogQueueGivesUpRefusedBatches(t *testing.T) {
	s := &stuckSink{release: make(chan struct{}), refuse: true}
	close(s.release)
	q := newLogQueue(s.send, slog.New(slog.DiscardHandler))
	q.push(chunkOf(1, 5))
	done := make(chan struct{})
	go func() { q.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the queue retries a refused batch")
	}
}
