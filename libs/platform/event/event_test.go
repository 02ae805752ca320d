package event_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/simpleci/simpleci/libs/platform/event"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
)

func TestEncodeRefusesOversizeEvents(t *testing.T) {
	ok := &eventsv1.RunFinished{RunId: "r", Reason: strings.Repeat("x", event.MaxEventBytes-100)}
	if _, err := event.Encode("e", "r", ok); err != nil {
		t.Fatalf("event under the limit: %v", err)
	}
	big := &eventsv1.RunFinished{RunId: "r", Reason: strings.Repeat("x", event.MaxEventBytes)}
	_, err := event.Encode("e", "r", big)
	if !errors.Is(err, event.ErrTooLarge) || !strings.Contains(err.Error(), "simpleci.events.v1.RunFinished") {
		t.Fatalf("oversize event: %v, want ErrTooLarge naming the type", err)
	}
}

func TestBound(t *testing.T) {
	if got := event.Bound("abcdefgh", 4); got != "abcd" {
		t.Fatalf("bound below the marker's length: %q", got)
	}
	if got := event.Bound("short", 10); got != "short" {
		t.Fatalf("short string changed: %q", got)
	}
	s := strings.Repeat("é", 5000) // 2 bytes each
	got := event.Bound(s, 1000)
	if len(got) > 1000 || !utf8.ValidString(got) || !strings.HasSuffix(got, " bytes]") || !strings.Contains(got, "…[cut ") {
		t.Fatalf("bound: %d bytes, valid %v, ends %q", len(got), utf8.ValidString(got), got[len(got)-20:])
	}
	kept := got[:strings.Index(got, "…[cut ")]
	if want := "…[cut " + strconv.Itoa(len(s)-len(kept)) + " bytes]"; !strings.HasSuffix(got, want) {
		t.Fatalf("marker %q, want %q", got[len(kept):], want)
	}
}
