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
