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
