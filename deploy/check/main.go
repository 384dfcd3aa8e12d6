// Command check loads deployment files with the parsers their tools use, and prints what
// they resolve to as JSON for platform/tests/deploy.rs to hold against what the roles read.
//
//	go -C deploy/check run . compose ../../docker-compose.yaml
//	go -C deploy/check run . kustomize ../k8s/overlays/dev
//
// compose: the Compose file as `docker compose config --format json` sees it, through
// compose-go (the Compose specification's reference loader): every profile on, variables
// interpolated with their defaults only (neither the caller's environment nor a .env file
// may change the answer).
//
// kustomize: the resources `kubectl apply -k DIR` would apply, rendered by the kustomize
// API (sigs.k8s.io/kustomize/api, what kubectl embeds), as a JSON array.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// The loaders, by the kind of file they read.
var kinds = map[string]func(string) ([]byte, error){
	"compose":   compose,
	"kustomize": kustomize,
}

func main() {
	if len(os.Args) != 3 {
		fail(fmt.Errorf("usage: check compose FILE | check kustomize DIR"))
	}
	load, ok := kinds[os.Args[1]]
	if !ok {
		fail(fmt.Errorf("unknown kind %q (compose, kustomize)", os.Args[1]))
	}
	out, err := load(os.Args[2])
	if err != nil {
		fail(err)
	}
	if _, err := os.Stdout.Write(out); err != nil {
		fail(err)
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
func kustomize(dir string) ([]byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var out []map[string]any
	for _, r := range resources.Resources() {
		m, err := r.Map()
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return json.MarshalIndent(out, "", "  ")
}
