// Command check loads deployment files with the parsers their tools use, and prints what
// they resolve to as JSON for platform/tests/deploy.rs to hold against what the roles read.
//
//	go -C deploy/check run . compose ../../docker-compose.yaml
//
// compose: the Compose file as `docker compose config --format json` sees it, through
// compose-go (the Compose specification's reference loader): every profile on, variables
// interpolated with their defaults only (neither the caller's environment nor a .env file
// may change the answer).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 3 {
		fail(fmt.Errorf("usage: check compose FILE"))
	}
	switch os.Args[1] {
	case "compose":
		out, err := compose(os.Args[2])
		if err != nil {
			fail(err)
		}
		if _, err := os.Stdout.Write(out); err != nil {
			fail(err)
		}
	default:
		fail(fmt.Errorf("unknown kind %q (compose)", os.Args[1]))
	}
}

func compose(path string) ([]byte, error) {
	options, err := cli.NewProjectOptions(
		[]string{path},
		cli.WithName("chat"),
		cli.WithEnv([]string{}),
		cli.WithDiscardEnvFile,
		cli.WithProfiles([]string{"*"}),
		cli.WithInterpolation(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return nil, err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return json.MarshalIndent(project, "", "  ")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "check:", err)
	os.Exit(1)
}
