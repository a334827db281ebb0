output "physical_names" {
  description = "Physical AWS name per component (users, movies, watchlists, jobs, jobs-dlq, notifications)."
  value = {
    for component, readable in local.readable_parts :
    component => readable == "" ? "movieapp-${local.hash}-${component}" : "movieapp-${readable}-${local.hash}-${component}"
  }
}
