package wake

import (
	"testing"
	"time"
)

func TestSignal(t *testing.T) {
	var s Signal
	s.Notify() // nobody waits: nothing to wake, no panic
	a, b := s.Wait(), s.Wait()
	if a != b {
		t.Fatal("waiters before one Notify share one channel")
	}
	select {
	case <-a:
		t.Fatal("closed before Notify")
	default:
	}
	s.Notify()
	for _, c := range []<-chan struct{}{a, b} {
		select {
		case <-c:
		case <-time.After(time.Second):
			t.Fatal("Notify did not wake a waiter")
		}
	}
	select {
	case <-s.Wait():
		t.Fatal("a Wait after Notify is already closed")
	default:
	}
}

func TestKeyed(t *testing.T) {
	var k Keyed
	k.Notify("a") // nobody waits
	a1, releaseA1 := k.Wait("a")
	a2, releaseA2 := k.Wait("a")
	b, releaseB := k.Wait("b")
	if a1 != a2 || a1 == b {
		t.Fatal("waiters of one key share a channel, other keys have their own")
	}
	k.Notify("a")
	for _, c := range []<-chan struct{}{a1, a2} {
		select {
		case <-c:
		case <-time.After(time.Second):
			t.Fatal("Notify(a) did not wake a waiter of a")
		}
	}
	select {
	case <-b:
		t.Fatal("Notify(a) woke a waiter of b")
	default:
	}
	releaseA1()
	releaseA2()
	if n := k.Len(); n != 1 {
		t.Fatalf("%d keys waited on, want 1 (b)", n)
	}
	releaseB()
	releaseB() // twice is harmless
	if n := k.Len(); n != 0 {
		t.Fatalf("%d keys left after every waiter released, want 0", n)
	}
	c, release := k.Wait("b")
	defer release()
	select {
	case <-c:
		t.Fatal("a new wait is already closed")
	default:
	}
}
