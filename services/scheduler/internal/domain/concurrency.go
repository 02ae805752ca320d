package domain

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxKeyQueue bounds the runs that wait on one concurrency key of a project: a run
// queued while that many wait ends errored at once (KeyQueueFull), so that a flood of
// pushes can neither grow the queue without end nor silently drop runs already waiting.
const MaxKeyQueue = 100

// ErrKeyHeld: the run's concurrency key is at its limit, or older runs of the key come
// first.
var ErrKeyHeld = errors.New("concurrency key held")

// Concurrency returns the run's concurrency key ("": none) and its limit (at least 1).
func (r *Run) Concurrency() (key string, limit int) {
	return r.Queued.GetConcurrencyKey(), max(int(r.Queued.GetConcurrencyLimit()), 1)
}

// CheckKey says whether the run may start now that before runs of its key count before
// it: the running ones (a run being cancelled holds its place until its runner stops)
// and the queued ones older than it. Runs of a key thus start in the order of their
// numbers, at most limit at once, however many runners are free.
func (r *Run) CheckKey(before int) error {
	key, limit := r.Concurrency()
	if key == "" || before < limit {
		return nil
	}
	return fmt.Errorf("run %d: %w: %d runs of concurrency key %q count before it (limit %d)", r.Number, ErrKeyHeld, before, key, limit)
}

// KeyQueueFull is the reason a new run of key ends errored when waiting runs already wait
// on it.
func KeyQueueFull(key string, waiting int) string {
	return fmt.Sprintf("concurrency key %q already has %d runs waiting (at most %d): this run was not queued; cancel waiting runs or set cancelInProgress",
		key, waiting, MaxKeyQueue)
}

// KeyWaitReason says why a queued run waits on its key: running are the numbers of the
// key's running runs, ahead those of its queued runs older than the run. "" when the key
// does not hold it (it waits for a runner).
func KeyWaitReason(key string, limit int, running, ahead []int64) string {
	if len(running)+len(ahead) < limit {
		return ""
	}
	why := fmt.Sprintf("waiting for concurrency key %q (limit %d)", key, limit)
	var parts []string
	if len(running) > 0 {
		parts = append(parts, "held by "+runList(running))
	}
	if len(ahead) > 0 {
		verb := " waits"
		if len(ahead) > 1 {
			verb = " wait"
		}
		parts = append(parts, runList(ahead)+verb+" before it")
	}
	return why + ": " + strings.Join(parts, "; ")
}

// runList names runs by number: "run 12", "runs 12, 13", at most five then "and N more".
func runList(ns []int64) string {
	const shown = 5
	var b strings.Builder
	if len(ns) == 1 {
		b.WriteString("run ")
	} else {
		b.WriteString("runs ")
	}
	for i, n := range ns[:min(len(ns), shown)] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatInt(n, 10))
	}
	if len(ns) > shown {
		fmt.Fprintf(&b, " and %d more", len(ns)-shown)
	}
	return b.String()
}
