package node_test

import (
	"flag"
	"testing"

	"github.com/simpleci/simpleci/libs/platform/node"
)

// A flag two components take is defined once and reaches both.
func TestSharedString(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var a, b string
	node.SharedString(fs, &a, "public-url", "https://default/", "first")
	node.SharedString(fs, &b, "public-url", "ignored", "second")
	if a != "https://default/" || b != "https://default/" {
		t.Fatalf("defaults: %q %q", a, b)
	}
	if err := fs.Parse([]string{"--public-url", "https://ci.example/"}); err != nil {
		t.Fatal(err)
	}
	if a != "https://ci.example/" || b != "https://ci.example/" {
		t.Fatalf("after parsing: %q %q", a, b)
	}
	defer func() {
		if recover() == nil {
			t.Error("a plain flag of the same name was not refused")
		}
	}()
	fs.String("other", "", "")
	var c string
	node.SharedString(fs, &c, "other", "", "")
}
