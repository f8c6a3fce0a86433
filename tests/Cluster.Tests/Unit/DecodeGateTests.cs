using Classifier.Grains.Inference;

namespace Classifier.Tests.Unit;

public sealed class DecodeGateTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task DecodesThatFitTheBudgetRunAtOnce()
    {
        var gate = new DecodeGate(100, maxConcurrent: 4);

        using var a = await gate.EnterAsync(60, Long, CancellationToken.None);
        using var b = await gate.EnterAsync(40, Long, CancellationToken.None);

        Assert.NotNull(a);
        Assert.NotNull(b);
        Assert.Equal(100, gate.ReservedBytes);
    }

    [Fact]
    public async Task ADecodeThatDoesNotFitWaitsUntilMemoryIsReleased()
    {
        var gate = new DecodeGate(100, maxConcurrent: 4);
        var first = await gate.EnterAsync(70, Long, CancellationToken.None);

        var second = gate.EnterAsync(50, Long, CancellationToken.None).AsTask();
        await Task.Delay(50);
        Assert.False(second.IsCompleted);
        Assert.Equal(1, gate.Waiting);

        first!.Dispose();
        using var admitted = await second.WaitAsync(Long);
        Assert.NotNull(admitted);
        Assert.Equal(50, gate.ReservedBytes);
    }

    [Fact]
    public async Task TheConcurrencyLimitHoldsEvenWhenMemoryIsFree()
    {
        var gate = new DecodeGate(1000, maxConcurrent: 1);
        using var first = await gate.EnterAsync(1, Long, CancellationToken.None);

        var second = await gate.EnterAsync(1, TimeSpan.FromMilliseconds(100), CancellationToken.None);

        Assert.Null(second);
    }

    [Fact]
    public async Task AWaitLongerThanAllowedIsRefusedAndLeavesTheLine()
    {
        var gate = new DecodeGate(100, maxConcurrent: 4);
        using var held = await gate.EnterAsync(100, Long, CancellationToken.None);

        var refused = await gate.EnterAsync(10, TimeSpan.FromMilliseconds(100), CancellationToken.None);

        Assert.Null(refused);
        Assert.Equal(0, gate.Waiting);
    }

    [Fact]
    public async Task ACancelledWaiterLeavesTheLineAndThrows()
    {
        var gate = new DecodeGate(100, maxConcurrent: 4);
        using var held = await gate.EnterAsync(100, Long, CancellationToken.None);
        using var leaving = new CancellationTokenSource();

        var waiting = gate.EnterAsync(10, Long, leaving.Token).AsTask();
        await leaving.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        Assert.Equal(0, gate.Waiting);
    }

    [Fact]
    public async Task TheFirstInLineIsNotOvertakenBySmallerDecodes()
    {
        var gate = new DecodeGate(100, maxConcurrent: 4);
        var held = await gate.EnterAsync(60, Long, CancellationToken.None);
        var large = gate.EnterAsync(80, Long, CancellationToken.None).AsTask();
        await Task.Delay(20);

        // 40 bytes are free and would fit, but the large decode is first in line.
        var small = gate.EnterAsync(30, TimeSpan.FromMilliseconds(200), CancellationToken.None).AsTask();
        Assert.Null(await small);
        Assert.False(large.IsCompleted);

        held!.Dispose();
        using var admitted = await large.WaitAsync(Long);
        Assert.NotNull(admitted);
    }

    [Fact]
    public async Task ADecodeLargerThanTheWholeBudgetIsRejectedOutright()
    {
        var gate = new DecodeGate(100, maxConcurrent: 4);

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => gate.EnterAsync(101, Long, CancellationToken.None).AsTask());
    }

    [Fact]
    public async Task ReleasingALeaseTwiceGivesItsMemoryBackOnce()
    {
        var gate = new DecodeGate(100, maxConcurrent: 4);
        var lease = await gate.EnterAsync(60, Long, CancellationToken.None);
        using var other = await gate.EnterAsync(40, Long, CancellationToken.None);

        lease!.Dispose();
        lease.Dispose();

        Assert.Equal(40, gate.ReservedBytes);
    }

    [Fact]
    public async Task WhenTheLineHoldsTooManyBytesANewcomerIsTurnedAwayAtOnce()
    {
        var gate = new DecodeGate(100, maxConcurrent: 4, maxWaitingBytes: 1000);
        using var held = await gate.EnterAsync(100, Long, CancellationToken.None);
        var waiting = gate.EnterAsync(10, Long, CancellationToken.None, heldWhileWaiting: 800).AsTask();

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var refused = await gate.EnterAsync(10, Long, CancellationToken.None, heldWhileWaiting: 300);

        Assert.Null(refused);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), "the newcomer waited instead of being turned away");
        Assert.Equal(1, gate.Waiting);
        held!.Dispose();
        using var admitted = await waiting.WaitAsync(Long);
    }
}
