package netguard_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/forge/netguard"
)

func TestCheck(t *testing.T) {
	g := netguard.New(nil)
	for _, a := range []string{"127.0.0.1", "127.9.9.9", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
		"169.254.1.1", "fe80::1", "fd00:ec2::254", "fc00::1", "100.64.0.1", "0.0.0.0", "::", "::ffff:127.0.0.1",
		"::ffff:169.254.169.254", "224.0.0.1", "255.255.255.255", "64:ff9b::7f00:1", "::127.0.0.1", "fec0::1"} {
		if err := g.Check(netip.MustParseAddr(a)); !errors.Is(err, netguard.ErrForbidden) {
			t.Errorf("%s: %v, want ErrForbidden", a, err)
		}
	}
	for _, a := range []string{"93.184.216.34", "140.82.112.3", "2606:4700::6810:84e5", "8.8.8.8"} {
		if err := g.Check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("%s: %v, want allowed", a, err)
		}
	}
	allowed, err := netguard.ParseNetworks([]string{"10.1.0.0/16", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	g = netguard.New(allowed)
	for a, ok := range map[string]bool{"10.1.2.3": true, "10.2.0.1": false, "127.0.0.1": true, "127.0.0.2": false, "169.254.169.254": false} {
		if err := g.Check(netip.MustParseAddr(a)); (err == nil) != ok {
			t.Errorf("with 10.1.0.0/16 and 127.0.0.1 allowed, %s: %v", a, err)
		}
	}
	if _, err := netguard.ParseNetworks([]string{"10.0.0.0/99"}); err == nil {
		t.Error("a bad CIDR parsed")
	}
}

// The dialer refuses loopback, private, link-local and metadata addresses given as
// literals and a name that resolves to loopback, at connect time; an allowed network
// goes through.
func TestDialer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := netguard.New(nil).Dialer(2 * time.Second)
	for _, host := range []string{"127.0.0.1", "localhost", "[::1]", "10.0.0.1", "192.168.0.1", "169.254.169.254", "[fe80::1%lo]"} {
		c, err := d.DialContext(ctx, "tcp", host+":"+port)
		if err == nil {
			c.Close()
			t.Errorf("dialled %s", host)
			continue
		}
		if !errors.Is(err, netguard.ErrForbidden) {
			t.Errorf("%s: %v, want ErrForbidden", host, err)
		}
	}
	allowed := netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}).Dialer(2 * time.Second)
	c, err := allowed.DialContext(ctx, "tcp", "localhost:"+port)
	if err != nil {
		t.Fatalf("127.0.0.0/8 allowed: %v", err)
	}
	c.Close()
}

// Resolve refuses a name when any of its addresses is forbidden (a rebinding name
// answering with a public and a loopback address), and keeps the resolver's address
// out of the error.
func TestResolve(t *testing.T) {
	g := netguard.New(nil)
	g.LookupNetIP = func(_ context.Context, _, host string) ([]netip.Addr, error) {
		switch host {
		case "public.example":
			return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
		case "rebind.example":
			return []netip.Addr{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("127.0.0.1")}, nil
		case "metadata.example":
			return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, Server: "10.0.0.53:53", IsNotFound: true}
	}
	ctx := context.Background()
	if a, err := g.Resolve(ctx, "public.example"); err != nil || len(a) != 1 {
		t.Fatalf("public: %v %v", a, err)
	}
	for _, h := range []string{"rebind.example", "metadata.example", "127.0.0.1", "[::1]"} {
		if _, err := g.Resolve(ctx, h); !errors.Is(err, netguard.ErrForbidden) {
			t.Errorf("%s: %v, want ErrForbidden", h, err)
		}
	}
	_, err := g.Resolve(ctx, "missing.example")
	if err == nil || errors.Is(err, netguard.ErrForbidden) || strings.Contains(err.Error(), "10.0.0.53") {
		t.Errorf("missing host: %v", err)
	}
	// The real resolver: localhost is loopback.
	if _, err := netguard.New(nil).Resolve(ctx, "localhost"); !errors.Is(err, netguard.ErrForbidden) {
		t.Errorf("localhost: %v, want ErrForbidden", err)
	}
}
