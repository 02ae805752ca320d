// Package wake lets goroutines wait for "something changed" without polling: Notify
// wakes every waiter at once, and waiters re-check the state themselves.
package wake

import "sync"

// Signal is a broadcast that can fire any number of times. The zero value is ready.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// Wait returns a channel that is closed at the next Notify. Take it before checking the
// state, so that a change between the check and the wait is not missed.
func (s *Signal) Wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Notify wakes everyone waiting on a channel from Wait.
func (s *Signal) Notify() {
	s.mu.Lock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
	s.mu.Unlock()
}

// Keyed is a Signal per key (a run, say): Notify(k) wakes only the waiters of k, so a
// change of one thing does not wake everyone watching the others. An entry lives while
// someone waits on it. The zero value is ready.
type Keyed struct {
	mu sync.Mutex
	m  map[string]*keyedWait
}

type keyedWait struct {
	ch      chan struct{}
	waiters int
}

// Wait returns a channel that is closed at the next Notify of key, and a release to call
// once the channel is no longer watched (whether it fired or not). As with Signal, take
// it before checking the state.
func (k *Keyed) Wait(key string) (<-chan struct{}, func()) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[string]*keyedWait{}
	}
	w := k.m[key]
	if w == nil {
		w = &keyedWait{ch: make(chan struct{})}
		k.m[key] = w
	}
	w.waiters++
	var once sync.Once
	return w.ch, func() {
		once.Do(func() {
			k.mu.Lock()
			defer k.mu.Unlock()
			if w.waiters--; w.waiters == 0 && k.m[key] == w {
				delete(k.m, key)
			}
		})
	}
}

// Notify wakes everyone waiting on key.
func (k *Keyed) Notify(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if w := k.m[key]; w != nil {
		close(w.ch)
		delete(k.m, key)
	}
}

// Len is the number of keys waited on (for tests and metrics).
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}
