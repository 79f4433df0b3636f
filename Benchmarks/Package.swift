// swift-tools-version: 6.2
// Micro-benchmarks of Tributary's hot paths, kept out of the main build and of `swift test`.
// Run from this directory: `swift package benchmark` (release build; see docs/benchmarks.md).
import PackageDescription

let package = Package(
    name: "tributary-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "CoreBenchmarks",
            dependencies: [
                "Tributary", "TributaryCore",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/CoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
