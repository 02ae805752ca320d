package service

import (
	"sync"

	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
)

// runCache keeps the folded state of the runs this process decides on, so that a
// decision reads only the events appended since its last one (by this replica or
// another) instead of the whole stream: a report on a run of n steps costs O(new events),
// not O(n). An entry also serialises the decisions of this process on its run.
//
// The cached state is always a prefix of the committed stream: it is replaced only after
// a decision committed, and dropped when one fails (its own events may have been folded
// in before the commit failed), when the run ended, and when the cache is over its size.
type runCache struct {
	mu      sync.Mutex
	entries map[string]*cachedRun
	max     int
}

type cachedRun struct {
	mu   sync.Mutex  // held for the whole decision
	run  *domain.Run // nil: fold the stream from the start
	refs int         // decisions holding or waiting for mu; guarded by runCache.mu
}

// maxCachedRuns bounds the cache: runs in progress at once in a busy deployment, with
// room to spare; past it, idle entries are dropped (they fold from the start next time).
const maxCachedRuns = 2000

func newRunCache() *runCache {
	return &runCache{entries: map[string]*cachedRun{}, max: maxCachedRuns}
}

// acquire returns runID's entry, locked.
func (c *runCache) acquire(runID string) *cachedRun {
	c.mu.Lock()
	e := c.entries[runID]
	if e == nil {
		e = &cachedRun{}
		c.entries[runID] = e
	}
	e.refs++
	c.mu.Unlock()
	e.mu.Lock()
	return e
}

// release unlocks e, forgetting it when its run ended or nothing is cached.
func (c *runCache) release(runID string, e *cachedRun) {
	keep := e.run != nil && !e.run.Done()
	e.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	e.refs--
	if e.refs == 0 && !keep {
		delete(c.entries, runID)
	}
	for id, x := range c.entries {
		if len(c.entries) <= c.max {
			break
		}
		if x.refs == 0 {
			delete(c.entries, id)
		}
	}
}
