using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Reflection;
using Classifier.Gateway;
using Classifier.Gateway.Api;
using Classifier.Grains;
using Classifier.ServiceDefaults;
using Classifier.Tests.EndToEnd;
using Classifier.Tests.Support;
using k8s.Models;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;

namespace Classifier.Tests.Deployment;

/// <summary>What the manifests tell the apps matches what the apps read: settings, ports, probe paths, shutdown timing.</summary>
[Collection(ProcessClusterCollection.Name)]
public sealed class AppContractTests(ProcessClusterFixture cluster)
{
    /// <summary>The options classes each role binds, with their configuration sections.</summary>
    private static readonly Dictionary<string, Type[]> BoundOptions = new()
    {
        ["classifier-silo"] = [typeof(ModelsOptions), typeof(CacheOptions), typeof(ImageOptions), typeof(ClusterStatsOptions), typeof(ShardingOptions), typeof(TracingOptions)],
        ["classifier-gateway"] = [typeof(ClusterClientOptions), typeof(GatewayOptions), typeof(AuthOptions), typeof(TracingOptions)],
    };

    /// <summary>
    /// Read outside the options classes: the downward API (Orleans' Kubernetes hosting, silo name,
    /// advertised address, trace instance), ASP.NET Core's listening URLs, and .NET runtime settings.
    /// </summary>
    private static bool IsKnownNonOptionVariable(string name) =>
        name is "POD_NAME" or "POD_NAMESPACE" or "POD_IP" or "Urls"
        || name.StartsWith("DOTNET_", StringComparison.Ordinal)
        || name.StartsWith("Logging__", StringComparison.Ordinal);

    /// <summary>A settable property of the silo's <c>SiloHostOptions</c> (section Cluster), with its validation attributes.</summary>
    private sealed record SiloSetting(string Name, Type Type, ValidationAttribute[] Rules);

    /// <summary>
    /// The silo's options live in the Silo executable, which the tests run as a process rather than reference. Read
    /// through a MetadataLoadContext: an assembly loaded into the test process would be scanned (and fail to load its
    /// Kubernetes dependency) by every in-process Orleans test cluster started after it.
    /// </summary>
    private static readonly SiloSetting[] SiloHostSettings = ReadSiloHostSettings();

    private static SiloSetting[] ReadSiloHostSettings()
    {
        var silo = ClusterProcess.DllPath("Silo", "Classifier.Silo");
        var assemblies = Directory.GetFiles(Path.GetDirectoryName(silo)!, "*.dll")
            .Concat(Directory.GetFiles(System.Runtime.InteropServices.RuntimeEnvironment.GetRuntimeDirectory(), "*.dll"));
        using var context = new MetadataLoadContext(new PathAssemblyResolver(assemblies));
        var type = context.LoadFromAssemblyPath(silo).GetType("Classifier.Silo.SiloHostOptions", throwOnError: true)!;
        return type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.SetMethod is { IsPublic: true })
            .Select(p => new SiloSetting(p.Name, RuntimeType(p.PropertyType), p.GetCustomAttributesData().Select(Materialize).OfType<ValidationAttribute>().ToArray()))
            .ToArray();
    }

    private static Type RuntimeType(Type metadataType) =>
        Type.GetType(metadataType.AssemblyQualifiedName!) ?? throw new InvalidOperationException($"{metadataType} has no runtime type");

    /// <summary>A validation attribute read from metadata, rebuilt as a live one.</summary>
    private static ValidationAttribute? Materialize(CustomAttributeData data)
    {
        var type = Type.GetType(data.AttributeType.AssemblyQualifiedName!);
        if (type is null || !typeof(ValidationAttribute).IsAssignableFrom(type))
        {
            return null;
        }

        var attribute = (ValidationAttribute)Activator.CreateInstance(type, data.ConstructorArguments.Select(a => a.Value is Type t ? RuntimeType(t) : a.Value).ToArray())!;
        foreach (var named in data.NamedArguments)
        {
            type.GetProperty(named.MemberName)!.SetValue(attribute, named.TypedValue.Value);
        }

        return attribute;
    }

    private static string Section(Type options) => (string)options.GetField("SectionName", BindingFlags.Public | BindingFlags.Static | BindingFlags.FlattenHierarchy)!.GetValue(null)!;

    /// <summary>Configuration keys an options class binds: settable public properties, arrays with an index, nested settings classes (such as <c>Cluster:Tls</c>) by their own keys.</summary>
    private static IEnumerable<string> BoundKeys(Type options) => KeysOf(options, Section(options));

    private static IEnumerable<string> KeysOf(Type type, string prefix) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.SetMethod is { IsPublic: true })
            .SelectMany(p => IsSettingsClass(p.PropertyType)
                ? KeysOf(p.PropertyType, $"{prefix}:{p.Name}")
                : [$"{prefix}:{p.Name}" + (p.PropertyType.IsArray ? ":{n}" : "")]);

    /// <summary>One of this project's settings classes nested in another (bound key by key), not a value.</summary>
    private static bool IsSettingsClass(Type type) => type.IsClass && type.Namespace?.StartsWith("Classifier.", StringComparison.Ordinal) == true;

    private static string ConfigKey(string variable) =>
        string.Join(':', variable.Split("__").Select(s => int.TryParse(s, out _) ? "{n}" : s));

    public static TheoryData<string> Roles() => ["classifier-silo", "classifier-gateway"];

    [Theory]
    [MemberData(nameof(Roles))]
    public void EveryEnvironmentVariableIsASettingTheAppBinds(string deployment)
    {
        var known = BoundOptions[deployment].SelectMany(BoundKeys).ToHashSet(StringComparer.OrdinalIgnoreCase);
        if (deployment == "classifier-silo")
        {
            known.UnionWith(SiloHostSettings.SelectMany(s => IsSettingsClass(s.Type) ? KeysOf(s.Type, $"Cluster:{s.Name}") : [$"Cluster:{s.Name}" + (s.Type.IsArray ? ":{n}" : "")]));
        }

        foreach (var variable in Manifests.Container(deployment).Env.Select(e => e.Name))
        {
            Assert.True(IsKnownNonOptionVariable(variable) || known.Contains(ConfigKey(variable)),
                $"{deployment}: {variable} is not a setting the app reads (known: {string.Join(", ", known.Order(StringComparer.Ordinal))})");
        }
    }

    [Theory]
    [MemberData(nameof(Roles))]
    public void EverySettingValueInTheManifestsPassesTheAppsOwnValidation(string deployment)
    {
        var values = Manifests.Container(deployment).Env.Where(e => e.Value is not null && !IsKnownNonOptionVariable(e.Name))
            .ToDictionary(e => e.Name.Replace("__", ":", StringComparison.Ordinal), e => (string?)e.Value);
        Assert.NotEmpty(values);
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();

        foreach (var type in BoundOptions[deployment])
        {
            var options = configuration.GetSection(Section(type)).Get(type) ?? Activator.CreateInstance(type)!;
            var results = new List<ValidationResult>();
            Assert.True(Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true),
                $"{deployment}: {string.Join(" ", results.Select(r => r.ErrorMessage))}");
        }

        if (deployment == "classifier-silo")
        {
            // SiloHostOptions from metadata: each Cluster value converts to its property's type and passes its attributes.
            var cluster = configuration.GetSection("Cluster").GetChildren().ToList();
            Assert.NotEmpty(cluster);
            var boundElsewhere = BoundOptions[deployment].Where(t => Section(t) == "Cluster").SelectMany(t => t.GetProperties().Select(p => p.Name)).ToHashSet(StringComparer.OrdinalIgnoreCase);
            foreach (var value in cluster.Where(v => !boundElsewhere.Contains(v.Key)))
            {
                var setting = SiloHostSettings.Single(s => s.Name.Equals(value.Key, StringComparison.OrdinalIgnoreCase));
                if (IsSettingsClass(setting.Type))
                {
                    Assert.NotNull(value.Get(setting.Type)); // a nested section: every value converts to its property's type
                    continue;
                }

                var converted = TypeDescriptor.GetConverter(Nullable.GetUnderlyingType(setting.Type) ?? setting.Type).ConvertFromInvariantString(value.Value!);
                Assert.All(setting.Rules, rule => Assert.True(rule.IsValid(converted), $"Cluster:{value.Key} = {value.Value}: {rule.FormatErrorMessage(value.Key)}"));
            }

            Assert.Contains(SiloHostSettings, s => s.Name == "KubernetesHosting" && s.Type == typeof(bool));
            Assert.Contains(SiloHostSettings, s => s.Name == "DrainDelay" && s.Rules.OfType<RangeAttribute>().Any());
        }
    }

    [Fact]
    public void SiloContainerPortsAreTheOnesTheSiloListensOn()
    {
        var container = Manifests.Container("classifier-silo");
        var env = container.Env.ToDictionary(e => e.Name, e => e.Value);

        // Set explicitly in the manifest, so that the ports cannot drift from a default changed in code.
        Assert.Equal(new Uri(env["Urls"]).Port, Port(container, "metrics"));
        Assert.Equal(int.Parse(env["Cluster__SiloPort"], CultureInfo.InvariantCulture), Port(container, "orleans-silo"));
        Assert.Equal(int.Parse(env["Cluster__GatewayPort"], CultureInfo.InvariantCulture), Port(container, "orleans-gw"));
        AssertProbesOn(container, "metrics");
    }

    [Fact]
    public void GatewayServesTheApiOnHttpAndProbesAndMetricsOnTheManagementPort()
    {
        var container = Manifests.Container("classifier-gateway");
        var env = container.Env.ToDictionary(e => e.Name, e => e.Value);

        Assert.Equal(new Uri(env["Urls"]).Port, Port(container, "http"));
        // With a management port, /healthz and /readyz answer 404 on the API port: probes must use the management port.
        Assert.Equal(int.Parse(env["Gateway__ManagementPort"], CultureInfo.InvariantCulture), Port(container, "metrics"));
        AssertProbesOn(container, "metrics");
        var service = Manifests.All<V1Service>().Single(s => s.Metadata.Name == "classifier-gateway");
        Assert.Equal("http", service.Spec.Ports.Single(p => p.Name == "http").TargetPort.Value);
    }

    [Fact]
    public void TerminationGracePeriodsOutlastTheDrainAndTheHostShutdownTimeout()
    {
        var shutdownTimeout = new HostOptions().ShutdownTimeout; // neither app changes it
        var silo = Manifests.Deployment("classifier-silo").Spec.Template.Spec;
        var siloEnv = silo.Containers.Single().Env.ToDictionary(e => e.Name, e => e.Value);
        var drain = TimeSpan.Parse(siloEnv["Cluster__DrainDelay"], CultureInfo.InvariantCulture); // explicit, as the grace period depends on it

        Assert.True(silo.TerminationGracePeriodSeconds > (drain + shutdownTimeout).TotalSeconds,
            $"silo: {silo.TerminationGracePeriodSeconds} s does not cover a {drain.TotalSeconds} s drain and a {shutdownTimeout.TotalSeconds} s shutdown");

        var gateway = Manifests.Deployment("classifier-gateway").Spec.Template.Spec;
        var preStop = int.Parse(gateway.Containers.Single().Lifecycle.PreStop.Exec.Command[^1], CultureInfo.InvariantCulture);
        Assert.True(gateway.TerminationGracePeriodSeconds > preStop + shutdownTimeout.TotalSeconds, "gateway: grace period under preStop + shutdown timeout");
    }

    [Fact]
    public async Task EveryProbeAndScrapePathInTheManifestsAnswers200OnTheRunningApps()
    {
        // The fixture's silo serves on its HTTP port and its secured gateway has a management port, as in k8s/.
        var targets = new Dictionary<string, string> { ["classifier-silo"] = cluster.SiloUrl, ["classifier-gateway"] = cluster.SecuredManagementUrl };

        foreach (var (deployment, url) in targets)
        {
            var container = Manifests.Container(deployment);
            var paths = new[] { container.StartupProbe, container.LivenessProbe, container.ReadinessProbe }.Select(p => p.HttpGet.Path)
                .Concat(Manifests.Documents.Where(m => m.Kind == "ServiceMonitor" && m.Name == deployment)
                    .SelectMany(m => ((List<object?>)((Dictionary<string, object?>)m.Tree["spec"]!)["endpoints"]!).Cast<Dictionary<string, object?>>().Select(e => (string)e["path"]!)))
                .Distinct().ToList();

            Assert.Equal(["/healthz", "/metrics", "/readyz"], paths.Order(StringComparer.Ordinal));
            foreach (var path in paths)
            {
                using var response = await cluster.Http.GetAsync(url + path);
                Assert.True(response.IsSuccessStatusCode, $"{deployment}: GET {path} answered {(int)response.StatusCode}\n{cluster.Logs()}");
            }
        }
    }

    private static int Port(V1Container container, string name) => container.Ports.Single(p => p.Name == name).ContainerPort;

    private static void AssertProbesOn(V1Container container, string portName)
    {
        Assert.Equal("/healthz", container.LivenessProbe.HttpGet.Path);
        Assert.Equal("/readyz", container.ReadinessProbe.HttpGet.Path);
        Assert.All(new[] { container.StartupProbe, container.LivenessProbe, container.ReadinessProbe }, p => Assert.Equal(portName, p.HttpGet.Port.Value));
    }
}
