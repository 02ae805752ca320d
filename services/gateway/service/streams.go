package service

import (
	"crypto/sha256"
	"sync"
)

// DefaultMaxStreamsPerToken is how many log streams one token may hold open at once in
// one gateway process (Config.MaxStreamsPerToken).
const DefaultMaxStreamsPerToken = 8

// streamSlots counts the open log streams of each token, so that one token (a leaked
// one, a script gone wrong) cannot hold every connection and tail of the gateway and
// the log service. The tokens are kept as hashes.
type streamSlots struct {
	max  int
	mu   sync.Mutex
	open map[[sha256.Size]byte]int
}

func newStreamSlots(max int) *streamSlots {
	if max <= 0 {
		max = DefaultMaxStreamsPerToken
	}
	return &streamSlots{max: max, open: map[[sha256.Size]byte]int{}}
}

// acquire takes a slot of token; it returns false when all are taken, else the release
// to call when the stream ends.
func (s *streamSlots) acquire(token string) (func(), bool) {
	k := sha256.Sum256([]byte(token))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[k] >= s.max {
		return nil, false
	}
	s.open[k]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.open[k]--; s.open[k] <= 0 {
				delete(s.open, k)
			}
		})
	}, true
}
