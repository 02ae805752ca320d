// Command log runs SimpleCI's log service alone. It takes the flags of `simpleci
// serve` that concern it: the common ones and the log service's own (see
// docs/operations.md); it links only the log service.
package main

import (
	"os"

	"github.com/simpleci/simpleci/libs/platform/node"
	"github.com/simpleci/simpleci/services/log/service"
)

func main() {
	os.Exit(node.Command{Name: "log", Components: []node.Component{&service.Component{}}}.Main())
}
