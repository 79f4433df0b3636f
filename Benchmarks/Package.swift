// swift-tools-version: 6.2
// Micro-benchmarks of Tributary's hot paths, kept out of the main build and of `swift test`.
// Run from this directory: `swift package benchmark` (release build; see docs/benchmarks.md).
import Foundation
import PackageDescription

// SwiftPM names a path dependency after its folder, not after its manifest's `name`, so the
// parent package's products are found under whatever its clone is called.
let tributary = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .lastPathComponent.lowercased()

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
                .product(name: "Tributary", package: tributary),
                .product(name: "TributaryCore", package: tributary),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/CoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
