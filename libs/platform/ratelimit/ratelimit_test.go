package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestParseLimits(t *testing.T) {
	for in, want := range map[string]Limits{
		"off": {}, "2/s": {Rate: 2, Burst: 2}, "60/m": {Rate: 1, Burst: 1}, "30/m,burst=10": {Rate: 0.5, Burst: 10},
		"3600/h,burst=5": {Rate: 1, Burst: 5},
	} {
		got, err := ParseLimits(in)
		if err != nil || got != want {
			t.Errorf("ParseLimits(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "5", "5/d", "-1/s", "x/s", "1/s,burst=0", "1/s,b=3"} {
		if _, err := ParseLimits(bad); err == nil {
			t.Errorf("ParseLimits(%q) accepted", bad)
		}
	}
}

func TestAllow(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(Limits{Rate: 1, Burst: 3})
	l.now = func() time.Time { return now }
	for i := range 3 {
		if ok, _ := l.Allow("p1"); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, after := l.Allow("p1")
	if ok || after <= 0 || after > time.Second {
		t.Fatalf("past the burst: allowed %v, retry after %v (want refused, within 1s)", ok, after)
	}
	if ok, _ := l.Allow("p2"); !ok {
		t.Fatal("another project is limited by p1's burst")
	}
	now = now.Add(after)
	if ok, _ := l.Allow("p1"); !ok {
		t.Fatal("refused after the Retry-After it was given")
	}
	if got := RetryAfter(300 * time.Millisecond); got != "1" {
		t.Fatalf("RetryAfter = %q", got)
	}
}

// TestIdleBucketsForgotten: memory is bounded by the keys seen recently, however many
// keys were ever seen.
func TestIdleBucketsForgotten(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(Limits{Rate: 1, Burst: 2})
	l.now = func() time.Time { return now }
	for i := range 10_000 {
		l.Allow(fmt.Sprint("p", i))
	}
	if l.Len() != 10_000 {
		t.Fatalf("%d buckets", l.Len())
	}
	now = now.Add(l.idle)
	l.Allow("fresh")
	if l.Len() != 1 {
		t.Fatalf("%d buckets after every other was idle past %v, want 1", l.Len(), l.idle)
	}
}

func TestOff(t *testing.T) {
	l := New(Limits{})
	for range 1000 {
		if ok, _ := l.Allow("p"); !ok {
			t.Fatal("refused with the limit off")
		}
	}
	if l.Len() != 0 {
		t.Fatal("buckets kept with the limit off")
	}
}
