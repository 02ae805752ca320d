package service

import "testing"

func TestStreamSlotsPerToken(t *testing.T) {
	s := newStreamSlots(2)
	r1, ok1 := s.acquire("token-a")
	_, ok2 := s.acquire("token-a")
	_, ok3 := s.acquire("token-a")
	rb, okb := s.acquire("token-b")
	if !ok1 || !ok2 || ok3 || !okb {
		t.Fatalf("acquire: %v %v %v (token-b %v); want two slots per token, each token its own", ok1, ok2, ok3, okb)
	}
	r1()
	r1() // twice gives back one slot only
	if _, ok := s.acquire("token-a"); !ok {
		t.Fatal("a released slot was not given back")
	}
	if _, ok := s.acquire("token-a"); ok {
		t.Fatal("a slot released twice counted twice")
	}
	rb()
	if len(s.open) != 1 {
		t.Fatalf("%d tokens counted, want only token-a's (a token without streams is forgotten)", len(s.open))
	}
	if newStreamSlots(0).max != DefaultMaxStreamsPerToken {
		t.Fatal("0 does not mean the default")
	}
}
