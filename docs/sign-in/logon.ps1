# schoolgate sign-in for Windows: tells the gateway who signed in on this computer, so the
# policy's rules for that person (pupils, staff, a class) apply to it. Run by Group Policy:
#   User Configuration > Policies > Windows Settings > Scripts (Logon/Logoff)
#   Logon:  powershell.exe -NoProfile -ExecutionPolicy Bypass -File logon.ps1
#   Logoff: powershell.exe -NoProfile -ExecutionPolicy Bypass -File logon.ps1 -Event logoff
# The token is the one `schoolgate-agent sign-in-token NAME` printed. Pupils may be able to
# read it from the script share; that is allowed for: the gateway signs a person in only at
# the address the report comes from, so the token cannot sign anyone in elsewhere.
# A school laptop that goes home reports to the gateway's public off-site listener instead,
# by the off-site id its DNS profile carries: set $Gateway to that listener
# (https://dns.school.example) and $Device to the id; it then works at school too.
param([ValidateSet('logon', 'logoff')][string]$Event = 'logon')

$Gateway = 'https://gateway.school.example:8443'
$Token = 'sgs_REPLACE_WITH_THE_TOKEN'
$Device = ''

$adapter = Get-NetAdapter -Physical -ErrorAction SilentlyContinue |
    Where-Object Status -eq 'Up' | Select-Object -First 1
$report = @{
    user  = "$env:USERDOMAIN\$env:USERNAME"
    event = $Event
    host  = $env:COMPUTERNAME
}
if ($adapter) { $report.mac = $adapter.MacAddress }

try {
    $Uri = if ($Device) { "$Gateway/api/v1/sign-in/$Device" } else { "$Gateway/api/v1/sign-in" }
    Invoke-RestMethod -Method Post -Uri $Uri -TimeoutSec 5 `
        -Headers @{ Authorization = "Bearer $Token" } -ContentType 'application/json' `
        -Body ($report | ConvertTo-Json -Compress) | Out-Null
} catch {
    # A logon never waits on the gateway: the device's own rules apply until the next report.
    Write-EventLog -LogName Application -Source 'Application' -EventId 1001 -EntryType Warning `
        -Message "schoolgate sign-in failed: $_" -ErrorAction SilentlyContinue
}
