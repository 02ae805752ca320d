package record

import (
	"errors"
	"testing"

	"github.com/simpleci/simpleci/libs/eventstore"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ids     []string
		stored  map[string]string
		want    Outcome
		wantErr error
	}{
		{"NoneStored", []string{"a", "b"}, nil, New, nil},
		{"AllInStream", []string{"a", "b"}, map[string]string{"a": "s", "b": "s"}, Redelivered, nil},
		{"SomeNew", []string{"a", "b"}, map[string]string{"a": "s"}, Duplicate, eventstore.ErrDuplicateEvent},
		{"OtherStream", []string{"a"}, map[string]string{"a": "other"}, Duplicate, eventstore.ErrDuplicateEvent},
		{"MixedStreams", []string{"a", "b"}, map[string]string{"a": "s", "b": "other"}, Duplicate, eventstore.ErrDuplicateEvent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Classify("s", tc.ids, tc.stored)
			if got != tc.want || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("Classify = %v, %v; want %v, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	for _, m := range []map[string]string{nil, {}, {"a": "b", "": "", "ü": "\"\\\n"}} {
		b, err := EncodeMetadata(m)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) == 0 && b != nil {
			t.Errorf("EncodeMetadata(%v) = %q, want nil", m, b)
		}
		got, err := DecodeMetadata(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(m) || (len(m) == 0 && got != nil) {
			t.Errorf("round trip of %v = %v", m, got)
		}
		for k, v := range m {
			if got[k] != v {
				t.Errorf("round trip of %v = %v", m, got)
			}
		}
	}
	for _, b := range []string{"null", "{}"} {
		if got, err := DecodeMetadata([]byte(b)); err != nil || got != nil {
			t.Errorf("DecodeMetadata(%s) = %v, %v; want nil", b, got, err)
		}
	}
}
