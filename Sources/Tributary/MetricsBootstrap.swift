import Metrics
import Prometheus
import Synchronization

/// The process's Prometheus registry, bootstrapped into swift-metrics once (the metrics system
/// is global; tests run several nodes in one process and share it).
enum MetricsBootstrap {
    private static let registry = Mutex<PrometheusCollectorRegistry?>(nil)

    static func shared() -> PrometheusCollectorRegistry {
        registry.withLock { r in
            if let r { return r }
            let created = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: created)
            // Hummingbird and our own labels use dots; Prometheus names may not.
            factory.nameAndLabelSanitizer = { label, dimensions in
                (
                    label.replacingOccurrences(of: ".", with: "_"),
                    dimensions.map { ($0.0.replacingOccurrences(of: ".", with: "_"), $0.1) }
                )
            }
            MetricsSystem.bootstrap(factory)
            r = created
            return created
        }
    }

    static func text() -> String {
        var buffer: [UInt8] = []
        shared().emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
