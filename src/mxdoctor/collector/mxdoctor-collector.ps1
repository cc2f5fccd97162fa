<#
.SYNOPSIS
    mxdoctor collector for Exchange 2010 to Exchange Server SE: reads the transport queues, the held
    messages and the DNS settings of this server and pushes them as one snapshot to mxdoctor watch.

.DESCRIPTION
    Read-only: it runs only Get-* cmdlets and changes nothing on the server. Runs on PowerShell 2.0
    (Windows Server 2008 R2 / Small Business Server 2011) and later. Schedule it every 5 minutes:

      schtasks /Create /TN "mxdoctor collector" /SC MINUTE /MO 5 /RU SYSTEM /TR ^
        "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File C:\mxdoctor\mxdoctor-collector.ps1 -Url https://monitor.example:8440/api/v1/queues/SBS1 -TokenFile C:\mxdoctor\token.txt"

    Snapshot format ("mxdoctor-snapshot 1"): header lines starting with '#', then sections, each a
    '#section NAME' line followed by the objects as ConvertTo-Csv -NoTypeInformation writes them:
    get-queue, get-message, transport-server, send-connector, adapter-dns.

.PARAMETER Url
    Where to POST the snapshot: https://HOST:PORT/api/v1/queues/NAME (http:// only with -AllowHttp).
.PARAMETER TokenFile
    A file holding the bearer token given to this host in mxdoctor's [hosts.NAME] table.
.PARAMETER OutFile
    Write the snapshot to this file (e.g. on a share that mxdoctor reads) instead of, or when, pushing fails.
.PARAMETER MaxMessages
    At most this many Get-Message rows (the oldest held messages are what matters).
#>
param(
    [string]$Url = "",
    [string]$TokenFile = "",
    [string]$OutFile = "",
    [string]$HostLabel = $env:COMPUTERNAME,
    [int]$MaxMessages = 5000,
    [int]$TimeoutSeconds = 30,
    [switch]$AllowHttp
)

$ErrorActionPreference = "Stop"
$Version = "1"

function Write-Problem([string]$Text) {
    # One line on stderr, and in the Application log when the source exists, for the scheduler's history.
    [Console]::Error.WriteLine("mxdoctor-collector: " + $Text)
}

function Import-ExchangeShell {
    if (Get-Command Get-Queue -ErrorAction SilentlyContinue) { return }
    foreach ($name in @("Microsoft.Exchange.Management.PowerShell.E2010", "Microsoft.Exchange.Management.PowerShell.SnapIn")) {
        if (Get-PSSnapin -Registered -Name $name -ErrorAction SilentlyContinue) {
            Add-PSSnapin $name
            return
        }
    }
    throw "the Exchange Management Shell snap-in is not installed on this host"
}

function Join-Values($Values) {
    # Multi-valued properties (server lists, address spaces) as one space-separated field.
    $out = @()
    foreach ($v in @($Values)) { if ($v -ne $null) { $out += [string]$v } }
    return [string]::Join(" ", $out)
}

function Get-Section([string]$Name, $Objects) {
    $lines = @("#section " + $Name)
    $rows = @($Objects)
    if ($rows.Count -gt 0) { $lines += @($rows | ConvertTo-Csv -NoTypeInformation) }
    return $lines
}

function Get-Snapshot {
    $server = $env:COMPUTERNAME
    $exchange = Get-ExchangeServer -Identity $server
    $lines = @(
        "#mxdoctor-snapshot " + $Version,
        "#host " + $HostLabel,
        "#server " + $server,
        "#exchange " + [string]$exchange.AdminDisplayVersion,
        "#collected " + (Get-Date).ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ssZ")
    )

    $queues = Get-Queue -Server $server | Select-Object Identity, DeliveryType, Status, MessageCount,
        NextHopDomain, LastError, RetryCount, FirstRetryTime, LastRetryTime, NextRetryTime
    $lines += Get-Section "get-queue" $queues

    $messages = Get-Message -Server $server -ResultSize $MaxMessages |
        Where-Object { $_.Status -ne "Active" } |
        Select-Object Identity, FromAddress, Status, Size, DateReceived, LastError, RetryCount, Queue,
            @{Name = "Recipients"; Expression = { Join-Values $_.Recipients }}
    $lines += Get-Section "get-message" $messages

    if (Get-Command Get-TransportService -ErrorAction SilentlyContinue) {
        $transport = Get-TransportService -Identity $server
    } else {
        $transport = Get-TransportServer -Identity $server
    }
    $lines += Get-Section "transport-server" ($transport | Select-Object Name, ExternalDNSAdapterEnabled,
        @{Name = "ExternalDNSServers"; Expression = { Join-Values $_.ExternalDNSServers }},
        ExternalDNSProtocolOption, InternalDNSAdapterEnabled,
        @{Name = "InternalDNSServers"; Expression = { Join-Values $_.InternalDNSServers }},
        InternalDNSProtocolOption)

    $lines += Get-Section "send-connector" (Get-SendConnector | Select-Object Identity, Enabled,
        DNSRoutingEnabled, UseExternalDNSServersEnabled, ErrorPolicies,
        @{Name = "AddressSpaces"; Expression = { Join-Values $_.AddressSpaces }},
        @{Name = "SmartHosts"; Expression = { Join-Values $_.SmartHosts }})

    $adapters = Get-WmiObject -Class Win32_NetworkAdapterConfiguration -Filter "IPEnabled = TRUE"
    $lines += Get-Section "adapter-dns" ($adapters | Select-Object Description,
        @{Name = "DNSServerSearchOrder"; Expression = { Join-Values $_.DNSServerSearchOrder }})
    return [string]::Join("`r`n", $lines) + "`r`n"
}

function Send-Snapshot([string]$Body) {
    if (-not $Url.StartsWith("https://") -and -not ($AllowHttp -and $Url.StartsWith("http://"))) {
        throw "refusing to send the token over '$Url': use https://, or -AllowHttp on a trusted network"
    }
    if (-not $TokenFile -or -not (Test-Path -LiteralPath $TokenFile)) { throw "no -TokenFile, or it does not exist" }
    $token = (Get-Content -LiteralPath $TokenFile | Select-Object -First 1).Trim()
    try {
        # TLS 1.2 on .NET 3.5 needs the 2016 update (KB3154518); without it the default protocols stay.
        [System.Net.ServicePointManager]::SecurityProtocol = [System.Net.SecurityProtocolType]3072
    } catch {
        Write-Problem "TLS 1.2 is not available to .NET here; install KB3154518 if the push fails"
    }
    $bytes = [System.Text.Encoding]::UTF8.GetBytes($Body)
    $request = [System.Net.HttpWebRequest]::Create($Url)
    $request.Method = "POST"
    $request.Timeout = $TimeoutSeconds * 1000
    $request.ReadWriteTimeout = $TimeoutSeconds * 1000
    $request.ContentType = "text/plain; charset=utf-8"
    $request.Headers.Add("Authorization", "Bearer " + $token)
    $request.ContentLength = $bytes.Length
    $stream = $request.GetRequestStream()
    $stream.Write($bytes, 0, $bytes.Length)
    $stream.Close()
    $response = $request.GetResponse()
    $response.Close()
}

try {
    Import-ExchangeShell
    $snapshot = Get-Snapshot
} catch {
    Write-Problem ("could not read the queues: " + $_.Exception.Message)
    exit 2
}
$failed = $false
if ($Url) {
    try { Send-Snapshot $snapshot } catch {
        Write-Problem ("push to $Url failed: " + $_.Exception.Message)
        $failed = $true
    }
}
if ($OutFile -and (-not $Url -or $failed)) {
    # Write next to the target, then rename, so a reader never sees half a snapshot.
    $partial = $OutFile + ".partial"
    [System.IO.File]::WriteAllText($partial, $snapshot, (New-Object System.Text.UTF8Encoding($false)))
    if (Test-Path -LiteralPath $OutFile) { Remove-Item -LiteralPath $OutFile }
    Rename-Item -LiteralPath $partial -NewName (Split-Path -Leaf $OutFile)
    $failed = $false
}
if (-not $Url -and -not $OutFile) { [Console]::Out.Write($snapshot) }
if ($failed) { exit 1 }
exit 0
