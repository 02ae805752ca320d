// Command gateway runs SimpleCI's gateway service alone. It takes the flags of `simpleci
// serve` that concern it: the common ones and the gateway service's own (see
// docs/operations.md); it links only the gateway service.
package main

import (
	"os"

	"github.com/simpleci/simpleci/libs/platform/node"
	"github.com/simpleci/simpleci/services/gateway/service"
)

func main() {
	os.Exit(node.Command{Name: "gateway", Components: []node.Component{&service.Component{}}}.Main())
}
