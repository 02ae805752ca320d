// Command auth runs SimpleCI's auth service alone. It takes the flags of `simpleci
// serve` that concern it: the common ones and the auth service's own (see
// docs/operations.md); it links only the auth service.
package main

import (
	"os"

	"github.com/simpleci/simpleci/libs/platform/node"
	"github.com/simpleci/simpleci/services/auth/service"
)

func main() {
	os.Exit(node.Command{Name: "auth", Components: []node.Component{&service.Component{}}}.Main())
}
