// Package ratelimit is a token bucket per key (a project) with bounded memory: a bucket
// idle long enough to be full again is forgotten, since a new one is the same, so the
// buckets held are those of the keys seen within the last Burst/Rate seconds.
package ratelimit

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits is a rate and a burst: Burst requests at once, then Rate per second.
// Rate 0 turns the limit off.
type Limits struct {
	Rate  float64
	Burst int
}

// String formats l as ParseLimits reads it ("off" when off).
func (l Limits) String() string {
	if l.Rate <= 0 {
		return "off"
	}
	return fmt.Sprintf("%s/s,burst=%d", strconv.FormatFloat(l.Rate, 'f', -1, 64), l.Burst)
}

// ParseLimits reads "N/s", "N/m" or "N/h", optionally followed by ",burst=B" (default:
// one second's worth, at least 1), or "off".
func ParseLimits(s string) (Limits, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return Limits{}, nil
	}
	spec, burst, hasBurst := strings.Cut(s, ",")
	num, unit, ok := strings.Cut(spec, "/")
	per := map[string]float64{"s": 1, "m": 60, "h": 3600}[unit]
	n, err := strconv.ParseFloat(num, 64)
	if !ok || per == 0 || err != nil || n <= 0 || math.IsInf(n, 0) {
		return Limits{}, fmt.Errorf("rate %q: want N/s, N/m or N/h (N > 0), optionally ,burst=B, or off", s)
	}
	l := Limits{Rate: n / per, Burst: max(1, int(math.Ceil(n/per)))}
	if hasBurst {
		b, ok := strings.CutPrefix(burst, "burst=")
		v, err := strconv.Atoi(b)
		if !ok || err != nil || v < 1 {
			return Limits{}, fmt.Errorf("rate %q: burst must be burst=B with B >= 1", s)
		}
		l.Burst = v
	}
	return l, nil
}

// Limiter holds one bucket per key. Safe for concurrent use.
type Limiter struct {
	limits Limits
	idle   time.Duration // a bucket unused this long is full: forgotten
	now    func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

// New returns a limiter with limits l for every key (a burst below 1 counts as 1).
func New(l Limits) *Limiter {
	l.Burst = max(l.Burst, 1)
	idle := time.Minute
	if l.Rate > 0 {
		idle = time.Duration(float64(l.Burst)/l.Rate*float64(time.Second)) + time.Second
	}
	return &Limiter{limits: l, idle: idle, now: time.Now, buckets: map[string]*bucket{}}
}

// Allow takes a token from key's bucket. When there is none it returns false and how long
// until there is one (for Retry-After).
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l == nil || l.limits.Rate <= 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= l.idle { // amortised: at most one sweep per idle period
		for k, b := range l.buckets {
			if now.Sub(b.used) >= l.idle {
				delete(l.buckets, k)
			}
		}
		l.lastSweep = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(l.limits.Rate), l.limits.Burst)}
		l.buckets[key] = b
	}
	b.used = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Len is how many buckets are held.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// RetryAfter formats d as a Retry-After value: whole seconds, at least 1.
func RetryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}
