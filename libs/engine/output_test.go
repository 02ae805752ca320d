package engine

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
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

func TestMaskValues(t *testing.T) {
	key := "-----BEGIN KEY-----\r\n  abcdefgh12345678\n\nxyz\n-----END KEY-----\n"
	got := map[string]bool{}
	for _, v := range maskValues([]string{key, "tok"}) {
		got[string(v)] = true
	}
	for _, want := range []string{key, "-----BEGIN KEY-----", "abcdefgh12345678", "-----END KEY-----", "tok", "dG9r",
		base64.StdEncoding.EncodeToString([]byte(key))} {
		if !got[want] {
			t.Errorf("%q is not masked", want)
		}
	}
	if got["xyz"] {
		t.Error("a line shorter than MinSecretLength is masked on its own")
	}
	vals := maskValues([]string{"a", "abcdef", "abc"})
	for i := 1; i < len(vals); i++ {
		if len(vals[i]) > len(vals[i-1]) {
			t.Fatalf("not longest first: %q", vals)
		}
	}
}

func TestMaskMultiLineSecret(t *testing.T) {
	key := "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEF\nAASCBKcwggSjAgEAAoIBAQC7VJTU\n-----END KEY-----"
	tests := []struct{ in, want string }{
		{"key:\n" + key + "\ndone\n", "key:\n***\ndone\n"},
		// Printed line by line, indented, or one line alone.
		{"  MIIEvQIBADANBgkqhkiG9w0BAQEF\n  AASCBKcwggSjAgEAAoIBAQC7VJTU\n", "  ***\n  ***\n"},
		{"x: -----END KEY-----\n", "x: ***\n"},
		// With CRLF line ends (a Windows tool, a terminal).
		{strings.ReplaceAll(key, "\n", "\r\n"), "***\r\n***\r\n***\r\n***"},
		{base64.StdEncoding.EncodeToString([]byte(key)), "***"},
	}
	for _, tt := range tests {
		if got := maskAll([]string{key}, tt.in); got != tt.want {
			t.Errorf("%q: %q, want %q", tt.in, got, tt.want)
		}
		// Every split of the input gives the same.
		for i := 0; i <= len(tt.in); i++ {
			if got := maskAll([]string{key}, tt.in[:i], tt.in[i:]); got != tt.want {
				t.Fatalf("%q split at %d: %q, want %q", tt.in, i, got, tt.want)
			}
		}
	}
}

// TestMaskerShortSecrets covers secrets too short for the shift table
// (the engine masks whatever it is given, even when callers should refuse
// such secrets).
func TestMaskerShortSecrets(t *testing.T) {
	tests := []struct {
		secrets []string
		in      string
		want    string
	}{
		{[]string{"x"}, "axbxx", "a***b******"},
		{[]string{"ab", "abcdef"}, "abcdeabcdefab", "***cde******"},
		{[]string{"ab", "zz"}, "zabzz", "z******"},
	}
	for _, tt := range tests {
		for i := 0; i <= len(tt.in); i++ {
			if got := maskAll(tt.secrets, tt.in[:i], tt.in[i:]); got != tt.want {
				t.Fatalf("%q split at %d: %q, want %q", tt.in, i, got, tt.want)
			}
		}
	}
}

// borrower copies what it is lent, as a DataBorrower must.
type borrower struct {
	discard
	out    bytes.Buffer
	chunks int
}

func (b *borrower) Log(c LogChunk) { b.out.Write(c.Data); b.chunks++ }

func TestDataBorrowerGetsEveryByte(t *testing.T) {
	p := mustPipeline(t, step{"name": "Lorem", "run": []string{loremCommand(20_000), "echo s3cr3t-value; echo end"}})
	var b borrower
	res := Run(t.Context(), Job{Pipeline: p, Dir: t.TempDir(), Secrets: []string{"s3cr3t-value"}}, &b)
	if res.Status != StatusSucceeded {
		t.Fatalf("%s %s", res.Status, res.Reason)
	}
	var want strings.Builder
	for i := 1; i <= 20_000; i++ {
		fmt.Fprintf(&want, "%d lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore\n", i)
	}
	want.WriteString("***\nend\n")
	if b.out.String() != want.String() {
		t.Errorf("got %d bytes, want %d", b.out.Len(), want.Len())
	}
	if b.chunks < 2 {
		t.Errorf("%d chunks", b.chunks)
	}
}
