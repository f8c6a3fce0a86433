using BenchmarkDotNet.Running;

// dotnet run -c Release --project tools/Benchmarks -- --filter '*'   (see the README's Benchmark section)
BenchmarkSwitcher.FromAssembly(typeof(Classifier.Benchmarks.MetricRecording).Assembly).Run(args);
