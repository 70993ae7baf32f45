package main

import "errors"

// runBench is replaced by the benchmark driver.
func runBench(args []string) error { return errors.New("not built yet") }
