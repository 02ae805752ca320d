package engine

import (
	"bytes"
	"testing"
)

func maskAll(secrets []string, pieces ...string) string {
	m := newMasker(maskValues(secrets))
	var out bytes.Buffer
	emit := func(b []byte) { out.Write(b) }
	for _, p := range pieces {
		m.write([]byte(p), false, emit)
	}
	m.write(nil, true, emit)
	return out.String()
}

func TestMaskerEverySplit(t *testing.T) {
	tests := []struct {
		secrets []string
		in      string
		want    string
	}{
		{[]string{"hunter2"}, "pw=hunter2, again hunter2hunter2 hunter", "pw=***, again ****** hunter"},
		{[]string{"abc", "abcdef"}, "abcdefabcabcde", "*********de"},
		{[]string{"abcdef", "bcd"}, "abcdxbcdabcdef", "a***x******"},
		{[]string{"aaa"}, "aaaaaaa", "******a"},
		{[]string{"tok"}, "dG9r and tok", "*** and ***"}, // base64 of "tok"
		{[]string{""}, "nothing to mask", "nothing to mask"},
		{nil, "no secrets", "no secrets"},
	}
	for _, tt := range tests {
		if got := maskAll(tt.secrets, tt.in); got != tt.want {
			t.Errorf("%q in one piece: %q, want %q", tt.in, got, tt.want)
		}
		for i := 0; i <= len(tt.in); i++ {
			for j := i; j <= len(tt.in); j++ {
				if got := maskAll(tt.secrets, tt.in[:i], tt.in[i:j], tt.in[j:]); got != tt.want {
					t.Fatalf("%q split at %d,%d: %q, want %q", tt.in, i, j, got, tt.want)
				}
			}
		}
	}
}

func TestMaskerHoldsOnlyAPossibleSecret(t *testing.T) {
	m := newMasker(maskValues([]string{"secret"}))
	var out bytes.Buffer
	m.write([]byte("line one\nsec"), false, func(b []byte) { out.Write(b) })
	if out.String() != "line one\n" || string(m.held) != "sec" {
		t.Errorf("emitted %q, held %q", out.String(), m.held)
	}
	m.write([]byte("ond\n"), false, func(b []byte) { out.Write(b) })
	if out.String() != "line one\nsecond\n" || len(m.held) != 0 {
		t.Errorf("emitted %q, held %q", out.String(), m.held)
	}
}
