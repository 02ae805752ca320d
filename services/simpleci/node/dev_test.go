package node

import (
	"net"
	"testing"
)

// `simpleci dev` listens on loopback unless told otherwise (issue 9: it listened on every
// interface).
func TestDevListensOnLoopbackByDefault(t *testing.T) {
	for _, addr := range []string{DevHTTPAddr, DevGRPCAddr} {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			t.Errorf("default address %s is not loopback", addr)
		}
	}
}
